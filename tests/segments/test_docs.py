"""docs/segments.md: its Python example prints what the page says, its error lines are the
real ones, and its limits table states the limits the code enforces."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from relove import regexp
from relove.errors import FilterError
from relove.segments import lower, operators, parse_filter, parser

DOC = (Path(__file__).resolve().parents[2] / "docs" / "segments.md").read_text(encoding="utf-8")


def _block(lang: str, after: str) -> str:
    start = DOC.index(after)
    return re.findall(rf"```{lang}\n(.*?)```", DOC[start:], re.S)[0]


def test_the_python_example_prints_what_the_page_says(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_block("python", "## Python"), encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    assert out == _block("text", "prints")


def test_the_error_lines_are_the_real_ones():
    lines = _block("text", "## Errors").splitlines()
    for text, line in zip(
        ['city like "x"', 'last_seen_at > "abc"', "score > 99999999999999999999"], lines,
        strict=True,
    ):
        with pytest.raises(FilterError) as info:
            parse_filter(text)
        assert str(info.value) == line


def test_the_limits_table_states_the_enforced_limits():
    table = DOC[DOC.index("## Limits") : DOC.index("## Errors")]
    for figure in (
        f"{parser.MAX_FILTER_LENGTH:,} characters",
        f"{operators.MAX_IN_VALUES:,} values",
        f"{lower.MAX_NESTING} levels",
        f"{lower.MAX_TERMS:,}, counted",
        f"{lower.MAX_SEGMENT_DEPTH} references deep",
        f"{regexp.MAX_REGEX_LENGTH} characters",
        f"{regexp.VALUE_TIMEOUT_S:g} s per value",
        f"{regexp.STATEMENT_BUDGET_S:g} s of searching",
    ):
        assert figure in table


def test_the_did_examples_parse_and_the_did_limits_are_stated():
    from relove.segments.tree import MAX_DURATION, MAX_TIMES

    for line in _block("text", "## Behaviour").splitlines():
        assert parse_filter(line).to_text()
    table = DOC[DOC.index("## Limits") : DOC.index("## Errors")]
    assert f"at most {MAX_DURATION.days}d" in table and f"0 to {MAX_TIMES}" in table
