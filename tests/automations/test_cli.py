"""`relove automations list|status|runs|pause|resume` (both databases)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relove.automations.models import AutomationRun
from relove.cli import main
from relove.db.models import User
from tests.automations.test_runs import WELCOME


@pytest.fixture
async def cli_env(session_factory, database_url, monkeypatch, tmp_path: Path):
    path = tmp_path / "automations.yaml"
    path.write_text(WELCOME)
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_AUTOMATIONS_FILE", str(path))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    async with session_factory.begin() as s:
        s.add_all([User(id=1, first_name="А"), User(id=2, first_name="Б")])
        await s.flush()
        s.add_all([
            AutomationRun(automation_id="welcome", user_id=1, step="3", status="waiting",
                          due_at=now, started_at=now, updated_at=now, sent=1),
            AutomationRun(automation_id="welcome", user_id=2, step="3", status="stopped",
                          reason="stop_when", started_at=now, updated_at=now, sent=1),
        ])  # fmt: skip
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_status_runs_pause(cli_env, capsys) -> None:
    code, out, _ = _run(capsys, "automations", "list", "--json")
    assert code == 0
    [item] = json.loads(out)
    assert (item["id"], item["entered"], item["active"], item["sent"]) == ("welcome", 2, 1, 2)
    code, out, _ = _run(capsys, "automations", "status", "welcome", "--json")
    st = json.loads(out)
    assert st["at_step"] == {"3": 1} and st["stop_reasons"] == {"stop_when": 1}
    code, out, _ = _run(capsys, "automations", "runs", "welcome", "--user", "2", "--json")
    assert [(r["user_id"], r["status"]) for r in json.loads(out)] == [(2, "stopped")]
    assert _run(capsys, "automations", "pause", "welcome")[0] == 0
    assert json.loads(_run(capsys, "automations", "status", "welcome", "--json")[1])["paused"]
    assert _run(capsys, "automations", "resume", "welcome")[0] == 0
    code, _, err = _run(capsys, "automations", "pause", "nope")
    assert code == 1 and "automation 'nope' is not in RELOVE_AUTOMATIONS_FILE" in err
    assert "Traceback" not in err
