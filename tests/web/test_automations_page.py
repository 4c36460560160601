"""Automations page (every role reads, operators pause/resume): the file's automations with
trigger and steps (hostile step text as text), paused or not, runs by state matching the rows,
the latest runs linking to their users; pause/resume with role and CSRF checks."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from relove.automations.models import AutomationRun, AutomationState
from relove.events.models import Event
from tests.web.conftest import (
    OPERATOR_ID,
    OWNER_ID,
    VIEWER_ID,
    ConsoleHarness,
    MakeConsole,
    add_users,
)

HOSTILE_TEXT = "<b>hi</b> {{ user.first_name }} &lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_VALUE = "<img src=x onerror=alert(1)>"

FILE = """\
automations:
  - id: welcome
    trigger: {event: user.created}
    stop_when: unsubscribed = true
    steps:
      - id: hello
        send: "<b>hi</b> {{ user.first_name }} &lt;script&gt;alert(1)&lt;/script&gt;"
      - id: day1
        wait: 1d
      - id: mark
        set: {note: "<img src=x onerror=alert(1)>"}
  - id: clicked
    trigger: {event: link.clicked, props: {broadcast_id: 12}}
    steps:
      - {id: tag, tag: clicked_b12}
"""


@pytest.fixture
async def autos(make_console: MakeConsole, tmp_path: Path) -> ConsoleHarness:
    path = tmp_path / "automations.yaml"
    path.write_text(FILE, encoding="utf-8")
    h = await make_console(automations_file=path)
    await add_users(h.sessions, [{"id": 501, "first_name": HOSTILE_VALUE},
                                 {"id": 502}, {"id": 503}])
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    async with h.sessions.begin() as s:
        s.add_all([
            AutomationRun(automation_id="welcome", user_id=501, step="day1", status="waiting",
                          due_at=now, started_at=now, updated_at=now, sent=1),
            AutomationRun(automation_id="welcome", user_id=502, step="mark", status="completed",
                          started_at=now, updated_at=now, ended_at=now, sent=1),
            AutomationRun(automation_id="welcome", user_id=503, step="hello", status="stopped",
                          reason=HOSTILE_VALUE, started_at=now, updated_at=now, ended_at=now,
                          errors=1),
        ])
    return h


def _escaped(body: str, value: str) -> bool:
    return value not in body and (html.escape(value, quote=False) in body
                                  or html.escape(value) in body)


async def test_every_role_reads_counts_steps_and_runs_as_text(autos: ConsoleHarness) -> None:
    viewer = await autos.login(VIEWER_ID)
    assert 'href="/automations"' in (await viewer.get("/")).text
    r = await viewer.get("/automations")
    assert r.status_code == 200
    assert 'data-automation="welcome"' in r.text and 'data-automation="clicked"' in r.text
    row = r.text.split('data-automation="welcome"')[1].split("</tr>")[0]
    # entered, active, completed, stopped, sent, errors
    assert [c.split("<")[0] for c in row.split('<td class="num">')[2:]] == \
        ["3", "1", "1", "1", "2", "1"]
    assert "link.clicked {broadcast_id: 12}" in r.text
    page = await viewer.get("/automations/welcome")
    assert page.status_code == 200
    assert _escaped(page.text, "<b>hi</b> {{ user.first_name }}")
    assert "&lt;script&gt;" not in page.text.replace("&amp;lt;script&amp;gt;", "")
    assert _escaped(page.text, HOSTILE_VALUE)  # the marker value and the stop reason
    assert "<script>" not in page.text.split("</head>")[1]
    for uid in (501, 502, 503):
        assert f'href="/users/{uid}"' in page.text
    assert "<code>day1</code>: 1" in page.text  # active per step
    assert 'action="/automations/welcome/pause"' not in page.text  # viewers read only


async def test_pause_resume_role_matrix_csrf_and_audit(autos: ConsoleHarness) -> None:
    anonymous = autos.client()
    r = await anonymous.get("/automations")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    viewer = await autos.login(VIEWER_ID)
    operator = await autos.login(OPERATOR_ID)
    assert (await viewer.post_form("/automations/welcome/pause")).status_code == 403
    assert (await operator.post_form("/automations/welcome/pause", csrf=False)).status_code \
        == 403
    async with autos.sessions() as s:
        assert (await s.execute(select(AutomationState))).first() is None
    r = await operator.post_form("/automations/welcome/pause", htmx=False)
    assert r.status_code == 303
    page = await operator.get(r.headers["location"])
    assert 'action="/automations/welcome/resume"' in page.text
    assert "status-paused" in (await viewer.get("/automations")).text
    async with autos.sessions() as s:
        assert (await s.get(AutomationState, "welcome")).paused
    assert (await operator.post_form("/automations/welcome/resume")).status_code == 204
    assert (await operator.post_form("/automations/nope/pause")).status_code == 404
    async with autos.sessions() as s:
        assert not (await s.get(AutomationState, "welcome")).paused
        assert await s.get(AutomationState, "nope") is None
        events = [(e.name, e.props, e.actor) for e in (await s.execute(
            select(Event).where(Event.name.like("automation.%")).order_by(Event.id))).scalars()]
    actor = f"admin:{OPERATOR_ID}"
    assert events == [("automation.paused", {"automation": "welcome"}, actor),
                      ("automation.resumed", {"automation": "welcome"}, actor)]


async def test_no_file_and_broken_file(make_console: MakeConsole, tmp_path: Path) -> None:
    h = await make_console()
    owner = await h.login(OWNER_ID)
    r = await owner.get("/automations")
    assert r.status_code == 200 and "RELOVE_AUTOMATIONS_FILE" in r.text
    broken = tmp_path / "broken.yaml"
    broken.write_text("automations:\n  - id: x\n    trigger: {event: user.created}\n"
                      f"    steps: [{{send: \"{HOSTILE_VALUE}\"}}]\n", encoding="utf-8")
    h2 = await make_console(automations_file=broken)
    owner2 = await h2.login(OWNER_ID)
    r = await owner2.get("/automations")
    assert r.status_code == 200 and 'role="alert"' in r.text and "broken.yaml" in r.text
    assert "<img src=x" not in r.text
