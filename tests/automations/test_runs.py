"""Automations on both databases: intake by the events cursor, waits on an injected clock,
stop_when, reentry, markers and events, a crash mid-send, a 403, editing a running automation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import update

from relove.automations.definition import parse_automations
from relove.automations.models import AutomationRun
from relove.automations.runner import AutomationRunner
from relove.automations.service import set_paused, status
from relove.broadcasts.content import Recipient, RenderedMessage
from relove.broadcasts.telegram import HttpSend
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.events import EventSource, record
from relove.telegram.outcomes import SendResult
from relove.users.service import set_values
from tests.automations.conftest import (
    bot_texts,
    count,
    events,
    make_runner,
    new_users,
    runs,
)
from tests.sandbox_fixtures import eventually

WELCOME = """
automations:
  - id: welcome
    trigger: {event: user.created}
    when: not stopped exists
    stop_when: unsubscribed = true
    steps:
      - id: hello
        send: {text: "Привет, {{ user.first_name }}!", buttons: [{label: Сайт, url: "https://example.org"}]}
      - wait: 1d
      - if: city not exists
        then: [{id: ask, send: "Из какого ты города?"}]
        else: [{set: {onboarded: true}}]
      - wait: 2d
      - id: tagged
        tag: welcomed
"""


async def settle(runner: AutomationRunner, check: Callable[[], Awaitable[Any]],
                 timeout: float = 30.0) -> Any:  # fmt: skip
    """Tick the runner until ``check()`` holds (PostgreSQL may wait out an id hole first)."""
    deadline = time.monotonic() + timeout
    while True:
        await runner.tick()
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout}s: {result!r}")
        await asyncio.sleep(0.05)


async def test_welcome_week_runs_on_the_clock(db, sandbox_client, api, clock) -> None:
    runner = make_runner(db, api, WELCOME, clock)
    await runner.tick()  # the cursor starts at the end of the history
    await new_users(db, sandbox_client, [501, 502])
    async with create_session_factory(db).begin() as s:
        await set_values(s, 502, {"city": "Казань"})

    async def greeted() -> bool:
        return all([await bot_texts(sandbox_client, u) for u in (501, 502)])

    await settle(runner, greeted)
    assert await bot_texts(sandbox_client, 501) == ["Привет, Аня501!"]
    assert [(r.status, r.step) for r in await runs(db)] == [("waiting", "3")] * 2  # a day
    await runner.tick()  # nothing is due before the clock moves
    assert len(await bot_texts(sandbox_client, 501)) == 1

    clock.advance(days=1, seconds=1)
    await runner.tick()
    assert await bot_texts(sandbox_client, 501) == ["Привет, Аня501!", "Из какого ты города?"]
    assert await bot_texts(sandbox_client, 502) == ["Привет, Аня502!"]  # has a city: else
    clock.advance(days=2, seconds=1)
    await runner.tick()
    done = await runs(db)
    assert [r.status for r in done] == ["completed", "completed"]
    assert [r.sent for r in done] == [2, 1]
    async with create_session_factory(db)() as s:
        u501, u502 = await s.get(User, 501), await s.get(User, 502)
        assert u501 is not None and u502 is not None
        assert u501.markers["tags"] == ["welcomed"] and "onboarded" not in u501.markers
        assert u502.markers["onboarded"] is True
    changed = [e for e in await events(db, "marker.changed") if e.source == "automation"]
    assert {(e.user_id, e.props["key"], e.actor) for e in changed} == {
        (501, "tags", "welcome"), (502, "onboarded", "welcome"), (502, "tags", "welcome")}
    created = {e.user_id: e.id for e in await events(db, "user.created")}
    assert {(e.user_id, e.source, e.actor, e.props["automation"], e.props["event_id"])
            for e in await events(db, "automation.started")} == {
        (u, "automation", "welcome", "welcome", created[u]) for u in (501, 502)}
    assert await count(db, "automation.completed") == 2
    st = await status_of(db, "welcome")
    assert (st["entered"], st["completed"], st["sent"], st["errors"]) == (2, 2, 3, 0)


async def status_of(engine, automation_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async with create_session_factory(engine)() as s:
        return (await status(s, automation_id)).to_dict()


async def test_stop_when_ends_the_run_before_the_next_step(db, sandbox_client, api,
                                                           clock) -> None:  # fmt: skip
    runner = make_runner(db, api, WELCOME, clock)
    await runner.tick()
    await new_users(db, sandbox_client, [511])
    await settle(runner, lambda: bot_texts(sandbox_client, 511))
    async with create_session_factory(db).begin() as s:
        await set_values(s, 511, {"unsubscribed": True})
    clock.advance(days=1, seconds=1)
    await runner.tick()
    assert await bot_texts(sandbox_client, 511) == ["Привет, Аня511!"]
    [run] = await runs(db)
    assert (run.status, run.reason, run.step) == ("stopped", "stop_when", "3")
    assert [e.props["reason"] for e in await events(db, "automation.stopped")] == ["stop_when"]


async def test_when_and_rolled_back_events_enter_no_one(db, sandbox_client, api,
                                                        clock) -> None:  # fmt: skip
    runner = make_runner(db, api, WELCOME, clock)
    await new_users(db, sandbox_client, [520])  # before the automations ran: history
    await runner.tick()
    await new_users(db, sandbox_client, [521], markers={"stopped": True})  # when: refused
    sessions = create_session_factory(db)
    async with sessions() as s:  # an event whose transaction rolls back is never seen
        s.add(User(id=522, first_name="Призрак"))
        await s.flush()
        await record(s, 522, "user.created", source=EventSource.bot)
        await s.rollback()
    await new_users(db, sandbox_client, [523])
    await settle(runner, lambda: bot_texts(sandbox_client, 523))
    assert [r.user_id for r in await runs(db)] == [523]
    assert await bot_texts(sandbox_client, 520) == [] and await bot_texts(sandbox_client, 521) == []


REENTRY = """
automations:
  - id: once
    trigger: {event: order.paid}
    steps: [{emit: {event: thanks.once, props: {n: 1}}}]
  - id: always
    trigger: {event: order.paid, props: {big: true}}
    reentry: always
    steps: [{emit: thanks.always}]
  - id: cool
    trigger: {event: order.paid}
    reentry: {cooldown: 1d}
    steps: [{increment: paid_count}]
"""


async def test_reentry_once_always_cooldown(db, sandbox_client, api, clock) -> None:
    runner = make_runner(db, api, REENTRY, clock)
    await runner.tick()
    await new_users(db, sandbox_client, [530])
    sessions = create_session_factory(db)

    async def paid(**props: Any) -> None:
        async with sessions.begin() as s:
            await record(s, 530, "order.paid", props, source=EventSource.api)

    async def counted(once: int, always: int, cool: int) -> bool:
        have = [await count(db, n) for n in ("thanks.once", "thanks.always")]
        runs_ = await runs(db, "cool")
        return have == [once, always] and len(runs_) == cool and all(
            r.status == "completed" for r in await runs(db))

    await paid(big=True)
    await settle(runner, lambda: counted(1, 1, 1))
    await paid(big=True)
    await paid(big=False)
    await settle(runner, lambda: counted(1, 2, 1))
    clock.advance(days=1, seconds=1)
    await paid(big=False)
    await settle(runner, lambda: counted(1, 2, 2))
    async with sessions() as s:
        u = await s.get(User, 530)
        assert u is not None and u.markers["paid_count"] == 2
    [e] = await events(db, "thanks.once")
    assert (e.source, e.actor, e.props) == ("automation", "once", {"n": 1})


class Crash(BaseException):
    """The process dies: nothing after the call runs (like kill -9 right after it)."""


class CrashAfterSending:
    """The real HTTP send to the sandbox, then the worker "dies" before writing the outcome."""

    def __init__(self, api: Any) -> None:
        self.send = HttpSend(api)

    async def __call__(self, recipient: Recipient, message: RenderedMessage) -> SendResult:
        await self.send(recipient, message)
        raise Crash


async def test_crash_mid_send_never_sends_twice(db, sandbox_client, api, clock) -> None:
    first = make_runner(db, api, WELCOME, clock, send=CrashAfterSending(api), owner="w1")
    await first.tick()
    await new_users(db, sandbox_client, [541, 542], markers={"city": "Омск"})

    async def crashed() -> bool:
        try:
            await first.tick()
        except Crash:
            return True
        return False

    deadline = time.monotonic() + 30
    while not await crashed():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    async def both_in_flight() -> bool:  # the other run's call went out before the "kill"
        in_flight = [r for r in await runs(db) if r.status == "sending"]
        return len(in_flight) == 2 and (await sandbox_client.stats())["messages"] == 2

    await eventually(both_in_flight, timeout=30)
    sending = [r for r in await runs(db) if r.status == "sending"]
    assert all(r.step == "hello" for r in sending)
    # A second worker: the first one's claims hold until their lease lapses.
    second = make_runner(db, api, WELCOME, clock, owner="w2")
    await second.tick()
    assert [r.owner for r in await runs(db) if r.status == "sending"] == ["w1"] * len(sending)
    clock.advance(seconds=61)

    async def all_waiting() -> bool:
        return all(r.status == "waiting" and r.step == "3" for r in await runs(db))

    await settle(second, all_waiting)
    for uid in (541, 542):
        assert await bot_texts(sandbox_client, uid) == [f"Привет, Аня{uid}!"]  # once each
    outcomes = [e.props["outcome"] for e in await events(db, "automation.step")
                if e.props["kind"] == "send"]
    assert outcomes == ["unknown", "unknown"]  # recorded as such, never resent
    clock.advance(days=1, seconds=1)  # none skipped: the rest of the week runs
    await second.tick()
    clock.advance(days=2, seconds=1)
    await second.tick()
    assert all(r.status == "completed" for r in await runs(db))
    for uid in (541, 542):
        assert await bot_texts(sandbox_client, uid) == [f"Привет, Аня{uid}!"]


async def test_blocked_user_is_deactivated_and_stopped(db, sandbox_client, api, clock) -> None:
    runner = make_runner(db, api, WELCOME, clock)
    await runner.tick()
    await new_users(db, sandbox_client, [551])
    await sandbox_client.block(551)

    async def stopped() -> bool:
        return [r.status for r in await runs(db)] == ["stopped"]

    await settle(runner, stopped)
    [run] = await runs(db)
    assert (run.reason, run.errors) == ("blocked", 1)
    async with create_session_factory(db)() as s:
        u = await s.get(User, 551)
        assert u is not None and u.is_active is False


async def test_editing_pausing_a_running_automation(db, sandbox_client, api, clock) -> None:
    runner = make_runner(db, api, WELCOME, clock)
    await runner.tick()
    await new_users(db, sandbox_client, [561, 562], markers={"city": "Тверь"})
    await settle(runner, lambda: all_at(db, "3"))
    sessions = create_session_factory(db)
    async with sessions() as s:
        await set_paused(s, "welcome", True)
        await s.commit()
    clock.advance(days=1, seconds=1)
    await runner.tick()
    assert await all_at(db, "3")  # paused: nobody moves
    async with sessions() as s:
        await set_paused(s, "welcome", False)
        await s.commit()
    # Only the steps with ids are kept: runs at a removed step end.
    head, _, _ = WELCOME.partition("      - wait: 1d")
    edited = head + "      - id: tagged\n        tag: welcomed\n"
    runner.automations = parse_automations(edited, "test.yaml")
    async with sessions.begin() as s:  # 562 is taken to a step that kept its id
        await s.execute(update(AutomationRun).where(AutomationRun.user_id == 562)
                        .values(step="tagged"))  # fmt: skip
    await runner.tick()
    by_user = {r.user_id: r for r in await runs(db)}
    assert (by_user[561].status, by_user[561].reason) == ("stopped", "step '3' removed")
    assert by_user[562].status == "completed"


async def all_at(engine, step: str) -> bool:  # type: ignore[no-untyped-def]
    found = await runs(engine)
    return bool(found) and all(r.status == "waiting" and r.step == step for r in found)


@pytest.mark.parametrize("n", [40])
async def test_many_users_enter_once_and_are_sent_once(db, sandbox_client, api, clock,
                                                       n: int) -> None:  # fmt: skip
    runner = make_runner(db, api, WELCOME, clock)
    await runner.tick()
    ids = list(range(600, 600 + n))
    await new_users(db, sandbox_client, ids)
    # two workers at once
    other = make_runner(db, api, WELCOME, clock)

    async def all_sent() -> bool:
        await other.tick()
        return (await sandbox_client.stats())["messages"] >= n

    await settle(runner, all_sent)
    assert len(await runs(db)) == n
    for uid in ids[:5] + ids[-5:]:
        assert await bot_texts(sandbox_client, uid) == [f"Привет, Аня{uid}!"]
    assert (await sandbox_client.stats())["messages"] == n


NOTIFY = """
automations:
  - id: vip
    trigger: {event: marker.changed, props: {key: vip}}
    when: vip = true
    steps:
      - notify_admins: "VIP: {{ user.first_name }} &lt;{{ user.id }}&gt;"
"""


async def test_notify_admins_on_a_marker_change(db, sandbox_client, api, clock) -> None:
    await sandbox_client.create_users([{"id": 4242, "first_name": "Админ", "started": True}])
    runner = make_runner(db, api, NOTIFY, clock, admin_ids=(4242,))
    await runner.tick()
    await new_users(db, sandbox_client, [571, 572])
    async with create_session_factory(db).begin() as s:
        await set_values(s, 571, {"vip": True}, source=EventSource.console)
        await set_values(s, 572, {"vip": False}, source=EventSource.console)

    async def notified() -> list[str]:
        return await bot_texts(sandbox_client, 4242)

    assert await settle(runner, notified) == ["VIP: Аня571 <571>"]
    assert await bot_texts(sandbox_client, 571) == []
    [run] = await runs(db)
    assert (run.user_id, run.status, run.sent) == (571, "completed", 0)


DID = """
automations:
  - id: followup
    trigger: {event: order.paid}
    when: not did "command.used" where command = "stop"
    reentry: always
    stop_when: did "order.cancelled"
    steps:
      - send: "Спасибо за заказ!"
      - wait: 1d
      - send: "Как вам заказ?"
"""


async def test_behavioural_when_and_stop_when(db, sandbox_client, api, clock) -> None:
    runner = make_runner(db, api, DID, clock)
    await runner.tick()
    await new_users(db, sandbox_client, [581, 582, 583])
    sessions = create_session_factory(db)
    async with sessions.begin() as s:
        await record(s, 583, "command.used", {"command": "stop"}, source=EventSource.bot)
        for uid in (581, 582, 583):
            await record(s, uid, "order.paid", source=EventSource.api)

    async def thanked() -> bool:
        return all([await bot_texts(sandbox_client, u) for u in (581, 582)])

    await settle(runner, thanked)
    async with sessions.begin() as s:
        await record(s, 582, "order.cancelled", source=EventSource.api)
    clock.advance(days=1, seconds=1)
    await runner.tick()
    assert await bot_texts(sandbox_client, 581) == ["Спасибо за заказ!", "Как вам заказ?"]
    assert await bot_texts(sandbox_client, 582) == ["Спасибо за заказ!"]
    assert await bot_texts(sandbox_client, 583) == []  # did /stop: never entered
    by_user = {r.user_id: (r.status, r.reason) for r in await runs(db)}
    assert by_user == {581: ("completed", None), 582: ("stopped", "stop_when")}
