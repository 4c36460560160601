"""docs/events.md: its Python example runs as written and prints the timeline it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_python_example_runs(tmp_path):
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        check=True,
    ).stdout.splitlines()
    assert [line.split(" ", 2)[2] for line in out] == [
        "marker.changed {'key': 'city', 'old': None, 'new': 'Москва'}",
        "page.viewed {'path': '/a'}",
        "order.paid {'sum': 1200}",
    ]
