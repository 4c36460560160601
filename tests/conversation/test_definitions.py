"""Scenario and catalog files: the shipped examples load; broken files are refused with the
line and the reason; a reload keeps the previous version on error."""

from __future__ import annotations

from pathlib import Path

import pytest

from relove.conversation.catalog import CatalogRegistry, load_catalog
from relove.conversation.scenarios import ScenarioRegistry, load_scenarios
from relove.conversation.yamlfile import DefinitionError

EXAMPLES = Path(__file__).parents[2] / "relove" / "conversation" / "examples"

GOOD = """\
flows:
  - id: quiz
    start: {commands: [quiz]}
    steps:
      - id: q1
        text: Город?
        marker: city
"""


def test_shipped_examples_load():
    flows = load_scenarios(EXAMPLES / "scenarios.yaml")
    onboarding = flows.flow("onboarding")
    assert onboarding is not None
    assert [s.marker for s in onboarding.steps] == ["city", "interests", "source"]
    assert "start" in onboarding.start.commands
    catalog = load_catalog(EXAMPLES / "catalog.yaml")
    assert len(catalog.items) >= 5


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("flows:\n  - id: a\n    steps: [\n", 4, "invalid YAML"),
        (GOOD.replace("marker: city", "marker: 'a..b'"), 7, "key must not be empty"),
        (GOOD.replace("        marker: city\n", "        marker: city\n        type: choice\n"),
         8, "needs options"),
        (GOOD.replace("id: q1", "id: Q 1"), 5, "ids are 1-20"),
        (GOOD.replace("commands: [quiz]", "commands: ['bad cmd']"), 3, "bad command"),
        (GOOD.replace("    steps:", "    when: city = \n    steps:"), 4, "invalid condition"),
        (GOOD.replace("    steps:", "    when: 'did \"message.received\" within 7d'\n    steps:"),
         4, "did … reads the event history"),
        (GOOD.replace("text: Город?", "text: Город?\n        colour: red"), 7, "Extra inputs"),
        (GOOD + "  - id: quiz\n    steps: [{id: a, text: b, marker: c}]\n", 8, "repeats"),
        (GOOD.replace("        marker: city\n",
                      "        marker: city\n      - {id: q1, text: b, marker: c}\n"),
         8, "step id"),
        ("flows:\n  - id: a\n    steps:\n      - id: s\n        text: t\n        marker: m\n"
         "        type: choice\n        options: [x, y, x]\n", 8, "option value"),
        ("flows:\n  - id: a\n    id: b\n", 3, "duplicate key"),
        (GOOD.replace("        marker: city\n", "        marker: city\n"
                      "        validate: {pattern: '('}\n"), 8, "does not compile"),
    ],
)
def test_broken_scenario_files_name_line_and_reason(tmp_path, text, line, reason):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_scenarios(path)
    assert info.value.line == line, str(info.value)
    assert reason in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_reload_keeps_previous_flows_on_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD, encoding="utf-8")
    registry = ScenarioRegistry.from_file(path)
    assert registry.for_command("quiz") is not None
    path.write_text(GOOD.replace("marker: city", "marker: ''"), encoding="utf-8")
    with pytest.raises(DefinitionError):
        registry.reload()
    assert registry.for_command("quiz") is not None  # still active
    path.write_text(GOOD.replace("[quiz]", "[quiz2]"), encoding="utf-8")
    registry.reload()
    assert registry.for_command("quiz") is None and registry.for_command("quiz2") is not None


def test_missing_file_is_a_definition_error(tmp_path):
    with pytest.raises(DefinitionError, match="cannot read"):
        load_scenarios(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("items:\n  - id: a\n    title: A\n", 2, "needs a text or a url"),
        ("items:\n  - id: a\n    title: A\n    url: ftp://x\n", 4, "should match pattern"),
        ("items:\n  - {id: a, title: A, text: t}\n  - {id: a, title: B, text: t}\n", 3, "repeats"),
        ("items:\n  - id: a\n    title: A\n    text: t\n    when: 'city ='\n", 5, "condition"),
        ("items:\n  - id: a\n    title: A\n    text: t\n    when: 'not did \"link.clicked\"'\n",
         5, "did … reads the event history"),
    ],
)
def test_broken_catalog_files(tmp_path, text, line, reason):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_catalog(path)
    assert info.value.line == line, str(info.value)
    assert reason in str(info.value)


def test_catalog_reload_keeps_previous_on_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("items: [{id: a, title: A, text: t}]\n", encoding="utf-8")
    registry = CatalogRegistry.from_file(path)
    path.write_text("items: [{id: a}]\n", encoding="utf-8")
    with pytest.raises(DefinitionError):
        registry.reload()
    assert registry.current.get("a") is not None
