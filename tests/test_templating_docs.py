"""docs/broadcasts.md, Templates: the limits the page states are the ones the code enforces."""

from __future__ import annotations

from pathlib import Path

from relove import templating

DOC = (Path(__file__).resolve().parents[1] / "docs" / "broadcasts.md").read_text(encoding="utf-8")


def test_the_templates_section_states_the_enforced_limits():
    section = DOC[DOC.index("## Templates") :]
    for figure in (
        f"{templating.MAX_OUTPUT:,} characters",
        f"{templating.MAX_STEPS:,} steps",
        f"{templating.MAX_RANGE:,} items",
        f"{templating.RENDER_TIMEOUT_S:g} s",
        f"{templating.INLINE_S * 1000:g} ms",
    ):
        assert figure in section, figure
