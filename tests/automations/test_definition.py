"""Definitions: a good file compiles to a flat program; a bad one is refused with one line per
problem (file:line: path: reason), also by `relove automations check`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relove.automations.definition import (
    AutomationFileError,
    load_automations,
    parse_automations,
    parse_duration,
)
from relove.cli import main

GOOD = """\
automations:
  - id: welcome
    trigger: {event: user.created}
    reentry: {cooldown: 30d}
    steps:
      - send: {template_file: hello.html, buttons: [{label: Да, url: "https://example.org"}]}
      - wait: 1h30m
      - if: city not exists
        then: [{id: ask, send: "Город?"}, {unset: [a, b.c]}]
        else: [{set: {onboarded: true}}, {increment: visits}]
      - emit: {event: welcome.done, props: {n: 1}}
      - notify_admins: "{{ user.first_name }} прошёл приветствие"
      - untag: [new]
"""

BAD = """\
automations:
  - id: Welcome
    trigger: {event: User, where: 'amount >'}
    when: 'city ='
    reentry: sometimes
    steps:
      - wait: 3x
      - send: {text: "{{ nope.x }}"}
      - frob: 1
      - if: a = 1
      - start_flow: onboarding
      - set: {"": 1}
      - emit: Bad
      - send: {text: hi, buttons: [{label: x, url: "javascript:alert(1)"}]}
      - send: "<b>{{ user.first_name }}"
  - id: ok_one
    trigger: {event: a.b}
    steps: []
"""


def test_a_good_file_compiles_to_a_flat_program(tmp_path: Path) -> None:
    (tmp_path / "hello.html").write_text("Привет, <b>{{ user.first_name }}</b>!")
    path = tmp_path / "automations.yaml"
    path.write_text(GOOD)
    [auto] = load_automations(path).automations
    steps = auto.steps
    assert auto.first == "1" and auto.reentry.cooldown == timedelta(days=30)
    assert (steps["1"].next, steps["2"].next) == ("2", "3")
    assert steps["2"].args["duration"] == timedelta(hours=1, minutes=30)
    assert (steps["3"].next, steps["3"].orelse) == ("ask", "3.else.1")
    assert (steps["ask"].next, steps["3.then.2"].next, steps["3.else.2"].next) == ("3.then.2",
                                                                                   "4", "4")
    assert steps["6"].next is None and steps["6"].args == {"names": ["new"]}


def test_every_problem_is_one_line_with_its_place() -> None:
    with pytest.raises(AutomationFileError) as e:
        parse_automations(BAD, "a.yaml")
    lines = e.value.lines
    expected = [
        "a.yaml:2: automations[0].id: an automation id",
        "a.yaml:3: automations[0].trigger.event: event name 'User' is not object.action",
        "a.yaml:3: automations[0].trigger.where: unexpected end of the filter",
        "a.yaml:4: automations[0].when: unexpected end of the filter",
        "a.yaml:5: automations[0].reentry: expected once, always or {cooldown: <duration>}",
        "a.yaml:7: automations[0].steps[0].wait: '3x' is not a duration",
        "a.yaml:8: automations[0].steps[1].send.text: unknown name 'nope'",
        "a.yaml:9: automations[0].steps[2].frob: unknown key 'frob'",
        "a.yaml:10: automations[0].steps[3].then: an if needs then: [steps]",
        "a.yaml:11: automations[0].steps[4].start_flow: no scenario 'onboarding': no scenarios",
        "a.yaml:12: automations[0].steps[5].set.: ",
        "a.yaml:13: automations[0].steps[6].emit: event name 'Bad'",
        "a.yaml:14: automations[0].steps[7].send.buttons[0]: button 'x'",
        "a.yaml:15: automations[0].steps[8].send.text: ",
        "a.yaml:18: automations[1].steps: expected a non-empty list of steps",
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


@pytest.mark.parametrize("text", ["automations: [", "- just a list", "automations: {a: 1}"])
def test_a_file_that_is_not_automations_is_one_line(text: str) -> None:
    with pytest.raises(AutomationFileError) as e:
        parse_automations(text, "x.yaml")
    assert len(e.value.lines) == 1 and e.value.lines[0].startswith("x.yaml:")


@pytest.mark.parametrize("value", ["0s", "", "1x", "d", "367d", "1d 2", None, 5])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD.replace("{template_file: hello.html, ", "{text: Привет, "))
    bad.write_text(BAD)
    assert main(["automations", "check", str(good)]) == 0
    assert "1 automations, OK" in capsys.readouterr().out
    assert main(["automations", "check", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 15 and err[0].startswith(f"{bad}:2: automations[0].id")
    assert "Traceback" not in "\n".join(err)


def test_the_shipped_examples_pass_the_check() -> None:
    import relove.automations

    path = Path(relove.automations.__file__).parent / "examples" / "automations.yaml"
    found = load_automations(path)
    assert [a.id for a in found.automations] == ["welcome", "reengage", "clicked_b12"]


TRIGGERS = """\
automations:
  - id: a
    trigger: {schedule: "0 25 * * *", filter: 'city ='}
    steps: [{tag: x}]
  - id: b
    trigger: {enters: 'did "x.y"'}
    steps: [{tag: x}]
  - id: c
    trigger: {event: a.b, schedule: "* * * * *"}
    steps: [{tag: x}]
  - id: d
    trigger: {event: a.b, where: 'segment:"vip"', filter: 'x = 1'}
    steps: [{tag: x}]
  - id: e
    trigger: {event: a.b, where: 'amount >= 10 and kind in ("a", "b") and note exists'}
    steps: [{tag: x}]
  - id: f
    trigger: {schedule: "30 9 * * 1-5"}
    steps: [{tag: x}]
  - id: g
    trigger: {enters: 'segment:"vip" and city = "Казань"'}
    steps: [{tag: x}]
"""


def test_schedule_enters_and_where_triggers_are_checked() -> None:
    with pytest.raises(AutomationFileError) as e:
        parse_automations(TRIGGERS, "t.yaml")
    expected = [
        "t.yaml:3: automations[0].trigger.filter: unexpected end of the filter",
        "t.yaml:3: automations[0].trigger.schedule: '0 25 * * *' is not a cron expression",
        "t.yaml:6: automations[1].trigger.enters: did … cannot be used in enters",
        "t.yaml:9: automations[2].trigger: a trigger has exactly one of event, schedule, enters",
        "t.yaml:12: automations[3].trigger.filter: unknown key 'filter' for an event trigger",
        "t.yaml:12: automations[3].trigger.where: segment: cannot be used here",
    ]
    lines = e.value.lines
    assert len(lines) == len(expected), "\n".join(lines)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)
    good = parse_automations(TRIGGERS.split("  - id: e\n")[0].split("  - id: a\n")[0]
                             + "  - id: e\n" + TRIGGERS.split("  - id: e\n")[1], "t.yaml")
    kinds = {a.id: a.trigger.kind for a in good.automations}
    assert kinds == {"e": "event", "f": "schedule", "g": "enters"}
    e_auto = good.get("e")
    assert e_auto is not None
    where = e_auto.props_filter(datetime.now(UTC))
    assert e_auto.matches_props({"amount": 10, "kind": "b", "note": ""}, where)
    assert not e_auto.matches_props({"amount": 9.5, "kind": "b", "note": ""}, where)
    assert not e_auto.matches_props({"amount": 10, "kind": "c", "note": ""}, where)
    assert not e_auto.matches_props({"amount": 10, "kind": "a"}, where)
