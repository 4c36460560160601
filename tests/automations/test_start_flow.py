"""``start_flow``: an automation starts a scenario flow for its user the way /start does — the
flow state is set and its first question arrives (intro, question, the bot's own option
buttons); a flow its ``when`` refuses is not started; an unknown flow id is refused by check."""

from __future__ import annotations

from pathlib import Path

import pytest

from relove.automations.definition import (
    AutomationFileError,
    parse_automations,
    scenario_flow_ids,
)
from relove.automations.runner import AutomationRunner, RunnerOptions
from relove.bot.handlers.scenarios import ScenarioCallback
from relove.broadcasts.telegram import HttpSend
from relove.conversation.scenarios.registry import ScenarioRegistry
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.users.service import set_values
from tests.automations.conftest import count, limiter, new_users, runs
from tests.automations.test_runs import settle

SCENARIOS = """
flows:
  - id: survey
    start: {commands: [survey]}
    when: not city exists
    intro: Пара вопросов.
    steps:
      - id: mood
        text: "**Как настроение?**"
        type: choice
        marker: mood
        skippable: true
        options:
          - {value: good, label: Хорошо}
          - {value: bad, label: Так себе}
    done: Спасибо!
"""

AUTOMATIONS = """
automations:
  - id: ask
    trigger: {event: user.created}
    steps:
      - start_flow: survey
      - tag: asked
"""


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


def _runner(db, api, clock, scenarios: Path) -> AutomationRunner:  # type: ignore[no-untyped-def]
    found = parse_automations(AUTOMATIONS, "a.yaml", flows=scenario_flow_ids(scenarios))
    return AutomationRunner(
        db, HttpSend(api), limiter(), automations=found, clock=clock,
        options=RunnerOptions(rate=200, lease_seconds=60, event_lag_seconds=0.2),
        scenarios=ScenarioRegistry.from_file(scenarios),
        labels={"scenario_skip_button": "Пропустить"}.__getitem__,
    )  # fmt: skip


async def test_start_flow_sends_the_first_question_with_the_bots_buttons(
    db, sandbox_client, api, clock, scenarios
) -> None:
    runner = _runner(db, api, clock, scenarios)
    await runner.tick()
    await new_users(db, sandbox_client, [901, 902], )
    async with create_session_factory(db).begin() as s:
        await set_values(s, 902, {"city": "Казань"})  # the flow's when says no

    async def done() -> bool:
        return [r.status for r in await runs(db)] == ["completed", "completed"]

    await settle(runner, done)
    messages = await sandbox_client.messages(901, from_bot=True)
    assert [m["text"] for m in messages] == ["Пара вопросов.", "Как настроение?"]
    rows = messages[1]["reply_markup"]["inline_keyboard"]
    pack = [ScenarioCallback(flow="survey", step="mood", action=a).pack()
            for a in ("0", "1", "skip")]  # fmt: skip
    assert [[b["callback_data"] for b in row] for row in rows] == [[pack[0]], [pack[1]],
                                                                   [pack[2]]]  # fmt: skip
    assert [b["text"] for row in rows for b in row] == ["Хорошо", "Так себе", "Пропустить"]
    async with create_session_factory(db)() as s:
        asked, refused = await s.get(User, 901), await s.get(User, 902)
        assert asked is not None and refused is not None
        assert asked.context["scenario"] == {"flow": "survey", "step": "mood", "selected": []}
        assert "scenario" not in refused.context
        assert asked.markers["tags"] == ["asked"] and refused.markers["tags"] == ["asked"]
    assert await sandbox_client.messages(902, from_bot=True) == []
    assert await count(db, "scenario.started") == 1
    assert [r.sent for r in await runs(db)] == [1, 0]


def test_start_flow_of_an_unknown_scenario_is_refused(scenarios: Path) -> None:
    text = AUTOMATIONS.replace("start_flow: survey", "start_flow: onboard")
    with pytest.raises(AutomationFileError) as e:
        parse_automations(text, "a.yaml", flows=scenario_flow_ids(scenarios))
    assert e.value.lines == ["a.yaml:6: automations[0].steps[0].start_flow: no scenario "
                             "'onboard' in the scenarios file (known: survey)"]  # fmt: skip
    with pytest.raises(AutomationFileError) as e:
        parse_automations(AUTOMATIONS, "a.yaml")
    assert "no scenarios file (RELOVE_SCENARIOS_FILE)" in e.value.lines[0]
