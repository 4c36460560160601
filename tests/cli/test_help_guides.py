"""Every command group's `--help` ends by naming its guide, and the guide exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relove.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    "users", "segment", "stats", "broadcast", "automations", "webhooks", "webhook", "events",
    "tokens", "admins", "console", "conversation", "sandbox", "demo", "db", "serve", "run",
    "worker",
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_an_existing_guide(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main([command, "--help"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    out = capsys.readouterr().out
    guides = re.findall(r"docs/[a-z0-9-]+\.md", out[out.index("Guide"):])
    assert guides, out
    for guide in guides:
        assert (ROOT / guide).is_file(), guide
