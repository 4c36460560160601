"""Scenarios & catalog page: the files shown as text, per-step counts and drop-off against a
brute-force count over seeded events, Validate (the CLI's one-line errors), Reload (role,
CSRF, all or nothing, the bot's own registries when shared)."""

from __future__ import annotations

import html
import random
import re
from collections import defaultdict
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.admins.models import Role
from relove.admins.service import add_admin
from relove.cli import main as cli_main
from relove.conversation.components import build_components
from relove.events.models import Event
from relove.web.app import close_console, create_console
from tests.web.conftest import (
    OPERATOR_ID,
    VIEWER_ID,
    Clock,
    ConsoleHarness,
    MakeConsole,
    console_settings,
)

HOSTILE = "<img src=x onerror=alert(1)>"

SCENARIOS = """\
flows:
  - id: onboarding
    title: "{{7*7}}"
    start: {commands: [start], deep_links: [welcome]}
    intro: "<b>hi</b>"
    steps:
      - id: city
        text: "<img src=x onerror=alert(1)>"
        marker: city
      - id: interests
        type: multi
        text: "{{7*7}} interests"
        marker: interests
        options:
          - {value: "<i>v</i>", label: "<script>alert(2)</script>"}
          - {value: body, label: Body}
      - id: source
        type: choice
        text: Source?
        marker: source
        when: source not exists
        options: [friends, other]
  - id: feedback
    start: {commands: [feedback]}
    repeat: true
    steps:
      - id: rating
        text: Rate 1-10
        marker: rating
        validate: {number: true, min: 1, max: 10}
ai_sessions:
  - id: talk
    title: "<b>AI</b>"
    start: {commands: [talk]}
    goal: "<img src=x onerror=alert(4)>"
    result:
      mood: {enum: [good, bad]}
"""

CATALOG = """\
items:
  - id: stream
    title: "<a href=x>y</a>"
    text: "{{7*7}}"
    url: https://example.org/s
    tags: [meditation]
"""

ONLY_FEEDBACK = """\
flows:
  - id: feedback
    start: {commands: [feedback]}
    steps:
      - {id: rating, text: Rate, marker: rating}
  - id: extra
    start: {commands: [extra]}
    steps:
      - {id: one, text: One, marker: one}
"""

STEPS = {"onboarding": ["city", "interests", "source", "<b>gone</b>"],
         "feedback": ["rating"], "<img src=x onerror=alert(3)>": ["q"]}
FILE_STEPS = {"onboarding": ["city", "interests", "source"], "feedback": ["rating"]}
NAMES = ["scenario.started", "scenario.answered", "scenario.completed", "scenario.cancelled"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    scenarios, catalog = tmp_path / "scenarios.yaml", tmp_path / "catalog.yaml"
    scenarios.write_text(SCENARIOS, encoding="utf-8")
    catalog.write_text(CATALOG, encoding="utf-8")
    return {"scenarios_file": scenarios, "catalog_file": catalog}


def _seed_rows(clock: Clock, n: int = 400, seed: int = 13) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        flow = rnd.choice(list(STEPS))
        name = rnd.choice([*NAMES, "scenario.answered", "message.received"])
        props: dict[str, Any] = {"flow": flow}
        if name in ("scenario.answered", "message.received") or (
                name == "scenario.cancelled" and rnd.random() < 0.7):
            props["step"] = rnd.choice(STEPS[flow])
        rows.append({"user_id": rnd.randint(1, 40), "name": name, "props": props,
                     "source": "bot", "actor": None,
                     "at": clock() - timedelta(days=rnd.uniform(0, 60))})
    return rows


def _brute(rows: list[dict[str, Any]], since: Any) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(flow, row) → (answers, distinct users, cancellations at the step), by hand."""
    events: dict[tuple[str, str], list[int]] = defaultdict(list)
    cancels: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        if since is not None and r["at"] < since:
            continue
        flow, step = r["props"]["flow"], r["props"].get("step")
        key = {"scenario.started": "started", "scenario.completed": "completed",
               "scenario.answered": f"step:{step}"}.get(r["name"])
        if key is not None:
            events[(flow, key)].append(r["user_id"])
        elif r["name"] == "scenario.cancelled" and step:
            cancels[(flow, f"step:{step}")] += 1
    keys = set(events) | set(cancels)
    return {k: (len(events[k]), len(set(events[k])), cancels[k]) for k in keys}


class _Funnels(HTMLParser):
    """{(flow, row): {answers, users, cancelled, lost}} from the page's funnel tables."""

    def __init__(self) -> None:
        super().__init__()
        self.out: dict[tuple[str, str], dict[str, str]] = {}
        self.flow: str | None = None
        self.row: tuple[str, str] | None = None
        self.cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and "data-flow" in a:
            self.flow = a["data-flow"]
        elif tag == "tr" and self.flow is not None and "data-row" in a:
            self.row = (self.flow, a["data-row"] or "")
            self.out[self.row] = {}
        elif tag == "td" and self.row is not None and "data-n" in a:
            self.cell = a["data-n"]
            self.out[self.row][self.cell] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None
        elif tag == "table":
            self.flow = self.row = None

    def handle_data(self, data: str) -> None:
        if self.row is not None and self.cell is not None:
            self.out[self.row][self.cell] += data


def _funnels(page: str) -> dict[tuple[str, str], dict[str, str]]:
    parser = _Funnels()
    parser.feed(page)
    return parser.out


async def _console(make_console: MakeConsole, files: dict[str, Path]) -> ConsoleHarness:
    return await make_console(**files)


async def test_counts_and_drop_off_match_a_brute_force_count(
        make_console: MakeConsole, files: dict[str, Path]) -> None:
    console = await _console(make_console, files)
    rows = _seed_rows(console.clock)
    async with console.sessions.begin() as s:
        await s.execute(insert(Event.__table__), rows)
    viewer = await console.login(VIEWER_ID)
    for window, days in (("7d", 7), ("30d", 30), ("all", None)):
        r = await viewer.get(f"/scenarios/counts?window={window}")
        assert r.status_code == 200, r.text[:500]
        since = console.clock() - timedelta(days=days) if days else None
        expected = _brute(rows, since)
        shown = _funnels(r.text)
        assert len(shown) >= 12, shown  # every flow of the file and of the events
        for flow in STEPS:
            keys = ["started", *(f"step:{s}" for s in STEPS[flow]), "completed"]
            for key in keys:
                answers, users, cancelled = expected.get((flow, key), (0, 0, 0))
                cells = shown.get((flow, key))
                if cells is None:  # a step no event names is not listed unless in the file
                    assert (answers, cancelled) == (0, 0), (window, flow, key)
                    assert key.removeprefix("step:") not in FILE_STEPS.get(flow, []), key
                    continue
                assert int(cells["answers"]) == answers, (window, flow, key)
                assert int(cells["users"]) == users, (window, flow, key)
                if key.startswith("step:"):
                    assert int(cells["cancelled"]) == cancelled, (window, flow, key)
            # drop-off: the users lost from one row of the file's order to the next
            chain = ["started", *(f"step:{s}" for s in FILE_STEPS.get(flow, [])), "completed"]
            if flow in FILE_STEPS:
                for prev, cur in zip(chain, chain[1:], strict=False):
                    lost = max(expected.get((flow, prev), (0, 0, 0))[1]
                               - expected.get((flow, cur), (0, 0, 0))[1], 0)
                    cell = shown[(flow, cur)]["lost"]
                    if expected.get((flow, prev), (0, 0, 0))[1]:
                        assert f"(−{lost})" in cell, (window, flow, cur, cell)


async def test_files_and_hostile_values_render_as_text(
        make_console: MakeConsole, files: dict[str, Path]) -> None:
    console = await _console(make_console, files)
    async with console.sessions.begin() as s:
        await s.execute(insert(Event.__table__), [
            {"user_id": 1, "name": "scenario.answered", "source": "bot", "at": console.clock(),
             "props": {"flow": "onboarding", "step": "<b>gone</b>"}},
            {"user_id": 1, "name": "scenario.started", "source": "bot", "at": console.clock(),
             "props": {"flow": HOSTILE.replace("1", "3")}},
        ])
    viewer = await console.login(VIEWER_ID)
    page = (await viewer.get("/scenarios")).text
    page += (await viewer.get("/scenarios/counts", headers={"HX-Request": "true"})).text
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "<a href=x>" not in page and "<b>gone</b>" not in page and "<b>hi</b>" not in page
    assert ">49<" not in page and " 49 " not in page  # {{7*7}} is never evaluated
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the step text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # an option label
    assert "&lt;a href=x&gt;y&lt;/a&gt;" in page and "{{7*7}}" in page  # the catalog item
    assert "&lt;b&gt;gone&lt;/b&gt;" in page  # a step only the events know
    assert "&lt;img src=x onerror=alert(3)&gt;" in page  # a flow only the events know
    assert "&lt;img src=x onerror=alert(4)&gt;" in page and "&lt;b&gt;AI&lt;/b&gt;" in page
    assert "<b>AI</b>" not in page
    assert 'data-mode="talk"' in page and "/talk" in page  # the AI mode
    assert "/feedback" in page and "?start=welcome" in page and "source not exists" in page
    assert 'href="/scenarios"' in page  # the navigation entry


async def test_auth_role_matrix_and_csrf(make_console: MakeConsole,
                                         files: dict[str, Path]) -> None:
    console = await _console(make_console, files)
    anonymous = console.client()
    r = await anonymous.get("/scenarios")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert (await anonymous.get("/scenarios/check")).status_code == 303
    assert (await anonymous.post("/scenarios/reload")).status_code == 401
    viewer = await console.login(VIEWER_ID)
    assert (await viewer.get("/scenarios/check")).status_code == 200  # validating changes nothing
    assert (await viewer.post_form("/scenarios/reload")).status_code == 403
    operator = await console.login(OPERATOR_ID)
    files["scenarios_file"].write_text(ONLY_FEEDBACK, encoding="utf-8")
    assert (await operator.post_form("/scenarios/reload", csrf=False)).status_code == 403
    plain = await operator.post_form("/scenarios/reload", htmx=False, csrf=False)
    assert plain.status_code == 403
    page = (await operator.get("/scenarios")).text
    assert 'data-flow-def="onboarding"' in page and 'data-flow-def="extra"' not in page  # unchanged
    async with console.sessions() as s:
        assert (await s.execute(select(Event).where(Event.name == "scenarios.reloaded"))).first() \
            is None
    # a plain form with the hidden CSRF field, as the page posts it
    r = await operator.post("/scenarios/reload", data={"csrf": operator.csrf})
    assert r.status_code == 200
    assert "Перечитано в консоли: сценариев 2, позиций каталога 1" in html.unescape(r.text)
    assert "/reload" in r.text  # says the bot runs elsewhere
    assert 'data-flow-def="extra"' in r.text and 'data-flow-def="onboarding"' not in r.text
    async with console.sessions() as s:
        event = (await s.execute(select(Event).where(Event.name == "scenarios.reloaded"))
                 ).scalar_one()
        assert event.actor == f"admin:{OPERATOR_ID}" and event.source == "console"
        assert event.props == {"flows": 2, "items": 1, "bot": False}


def _cli_error(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    capsys.readouterr()
    assert cli_main(["conversation", "check", "--scenarios", str(path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ")
    return err.removeprefix("error: ")


async def test_validate_shows_the_cli_error_and_a_broken_reload_changes_nothing(
        make_console: MakeConsole, files: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    console = await _console(make_console, files)
    operator = await console.login(OPERATOR_ID)
    r = await operator.get("/scenarios/check", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "2" in r.text and 'class="error"' not in r.text
    broken = SCENARIOS.replace("marker: rating", "marker: rating\n        bogus: 1")
    files["scenarios_file"].write_text(broken, encoding="utf-8")
    expected = _cli_error(capsys, files["scenarios_file"])
    assert str(files["scenarios_file"]) in expected and "bogus" in expected
    r = await operator.get("/scenarios/check", headers={"HX-Request": "true"})
    shown = re.search(r'<span class="error" role="alert">(.*?)</span>', r.text, re.S)
    assert shown is not None and " ".join(html.unescape(shown.group(1)).split()) == expected
    r = await operator.post_form("/scenarios/reload")
    assert r.status_code == 422 and expected in " ".join(html.unescape(r.text).split())
    page = (await operator.get("/scenarios")).text
    assert 'data-flow-def="onboarding"' in page  # the previous flows stay
    # a broken catalog refuses the whole reload (the good scenario file is not half-applied)
    files["scenarios_file"].write_text(ONLY_FEEDBACK, encoding="utf-8")
    files["catalog_file"].write_text("items:\n  - {id: x, title: T}\n", encoding="utf-8")
    r = await operator.post_form("/scenarios/reload")
    assert r.status_code == 422 and "needs a text or a url" in html.unescape(r.text)
    page = (await operator.get("/scenarios")).text
    assert 'data-flow-def="onboarding"' in page and 'data-flow-def="extra"' not in page


async def test_reload_applies_to_the_bot_sharing_the_process(
        session_factory: async_sessionmaker[AsyncSession], files: dict[str, Path]) -> None:
    settings = console_settings(**files)
    async with session_factory.begin() as s:
        await add_admin(s, OPERATOR_ID, Role.operator)
    bot_side = build_components(settings, session_factory)  # what `relove demo` runs
    clock = Clock()
    app = create_console(settings, session_factory, clock=clock,
                         scenarios=bot_side.scenarios, catalog=bot_side.catalog)
    harness = ConsoleHarness(app, settings, session_factory, clock)
    try:
        operator = await harness.login(OPERATOR_ID)
        files["scenarios_file"].write_text(ONLY_FEEDBACK, encoding="utf-8")
        assert bot_side.engine.registry.flow("extra") is None
        r = await operator.post_form("/scenarios/reload")
        assert r.status_code == 200
        assert "Перечитано для бота и консоли" in html.unescape(r.text)
        assert bot_side.engine.registry.flow("extra") is not None  # the bot's engine sees it
        assert bot_side.engine.registry.flow("onboarding") is None
    finally:
        for browser in harness.browsers:
            await browser.aclose()
        await close_console(app)
        await bot_side.close()
