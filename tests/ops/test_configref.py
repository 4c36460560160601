"""docs/configuration.md is the Settings class, written out: it fails when they drift."""

from __future__ import annotations

from pathlib import Path

from relove.config import Settings
from relove.ops import configref

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == configref.render(), (
        "docs/configuration.md is out of date: python -m relove.ops.configref > "
        "docs/configuration.md")


def test_every_setting_is_documented_with_a_meaning() -> None:
    rows = {line.split("|")[1].strip(" `"): line.split("|")[4].strip()
            for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `RELOVE_")}
    for name in Settings.model_fields:
        variable = f"RELOVE_{name.upper()}"
        assert variable in rows, variable
        assert rows[variable], f"{variable}: add a `#:` comment above it in relove/config.py"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert configref.main(["--check", str(stale)]) == 1
    stale.write_text(configref.render(), encoding="utf-8")
    assert configref.main(["--check", str(stale)]) == 0
