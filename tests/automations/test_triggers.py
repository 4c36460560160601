"""Triggers beyond a plain event, on both databases with the injected clock: a cron schedule
(each tick once, across a restart and a stretch without a worker), entering a saved segment
(only users who come to match; those matching at definition time do not enter), and an event
trigger's ``where`` on the event's props."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.automations.localtime import zone
from relove.automations.models import AutomationMember, AutomationTrigger
from relove.automations.runner import RunnerOptions
from relove.automations.service import set_paused
from relove.automations.triggers import next_tick
from relove.db.engine import create_session_factory
from relove.events import EventSource, record
from relove.segments.service import save_segment
from relove.users.service import set_values
from tests.automations.conftest import bot_texts, events, make_runner, new_users, runs
from tests.automations.test_runs import settle

MOSCOW = zone("Europe/Moscow")

DAILY = """
automations:
  - id: daily
    trigger: {schedule: "0 10 * * *", filter: 'city = "Москва"'}
    reentry: always
    steps:
      - send: "Доброе утро, {{ user.first_name }}!"
"""


def _options() -> RunnerOptions:
    return RunnerOptions(rate=200, lease_seconds=60, event_lag_seconds=0.2, default_tz=MOSCOW)


async def test_a_schedule_enters_its_filter_once_per_tick(db, sandbox_client, api,
                                                          clock) -> None:  # fmt: skip
    await new_users(db, sandbox_client, [601, 602])
    async with create_session_factory(db).begin() as s:
        await set_values(s, 601, {"city": "Москва"})
        await set_values(s, 602, {"city": "Казань"})
    clock.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)  # 11:00 in Moscow: today's tick passed
    runner = make_runner(db, api, DAILY, clock, options=_options())
    await runner.tick()  # set up: past ticks do not fire
    assert await runs(db) == []

    clock.now = datetime(2026, 3, 2, 6, 59, tzinfo=UTC)  # 09:59 in Moscow
    await runner.tick()
    assert await runs(db) == []
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 10:00 in Moscow
    await runner.tick()
    await runner.tick()  # the same tick again: no one enters twice
    assert [(r.user_id, r.status) for r in await runs(db)] == [(601, "completed")]
    assert await bot_texts(sandbox_client, 601) == ["Доброе утро, Аня601!"]
    assert await bot_texts(sandbox_client, 602) == []

    # A restart (a new worker) at the same time repeats nothing ...
    restarted = make_runner(db, api, DAILY, clock, options=_options())
    await restarted.tick()
    assert len(await runs(db)) == 1
    # ... and two days without a worker lose nothing: each missed tick is taken once, in
    # order (on the second, 601 is still in the run the first started: reentry decides).
    clock.now = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    again = make_runner(db, api, DAILY, clock, options=_options())
    await again.tick()
    await again.tick()
    assert await last_tick(db) == datetime(2026, 3, 4, 7, 0, tzinfo=UTC)
    clock.now = datetime(2026, 3, 5, 7, 0, tzinfo=UTC)
    await again.tick()
    ticks = [e.props["tick"] for e in await events(db, "automation.started")]
    assert ticks == ["2026-03-02T10:00:00+03:00", "2026-03-03T10:00:00+03:00",
                     "2026-03-05T10:00:00+03:00"]  # fmt: skip
    assert len(await bot_texts(sandbox_client, 601)) == 3


async def members(db: AsyncEngine) -> list[int]:
    async with create_session_factory(db)() as s:
        return list(await s.scalars(select(AutomationMember.user_id)
                                    .where(AutomationMember.user_id == 702)))  # fmt: skip


async def last_tick(db: AsyncEngine) -> datetime | None:
    async with create_session_factory(db)() as s:
        return await s.scalar(select(AutomationTrigger.last_tick))


VIP = """
automations:
  - id: vip
    trigger: {enters: 'segment:"vip"'}
    reentry: always
    steps:
      - send: "Вы теперь VIP, {{ user.first_name }}"
"""


async def test_entering_a_segment_enters_only_those_who_come_to_match(
    db, sandbox_client, api, clock
) -> None:
    await new_users(db, sandbox_client, [701, 702, 703])
    sessions = create_session_factory(db)
    async with sessions.begin() as s:
        await save_segment(s, "vip", "spent >= 100")
        await set_values(s, 701, {"spent": 500})
        await set_values(s, 702, {"spent": 50})
    runner = make_runner(db, api, VIP, clock)
    await runner.tick()  # set up: 701 matches at definition time and does not enter
    async with sessions.begin() as s:
        await set_values(s, 702, {"spent": 150})  # comes to match
        await set_values(s, 701, {"spent": 600})  # still matches: no entry
        await set_values(s, 703, {"spent": 10})  # does not match

    async def entered() -> list[int]:
        return [r.user_id for r in await runs(db)]

    assert await settle(runner, entered) == [702]
    assert await bot_texts(sandbox_client, 702) == ["Вы теперь VIP, Аня702"]
    assert await bot_texts(sandbox_client, 701) == []
    # Leaving and coming back enters again (reentry: always); a change within stays out.
    async with sessions.begin() as s:
        await set_values(s, 702, {"spent": 0})

    async def left() -> bool:
        return not await members(db)

    await settle(runner, left)
    async with sessions.begin() as s:
        await set_values(s, 702, {"spent": 1000})
        await set_values(s, 702, {"spent": 2000})

    async def twice() -> bool:
        return len(await runs(db)) == 2

    await settle(runner, twice)
    await runner.tick()
    assert [r.user_id for r in await runs(db)] == [702, 702]


WHERE = """
automations:
  - id: paid
    trigger:
      event: order.paid
      where: 'amount >= 10 and currency in ("RUB", "EUR") and not test exists'
    steps:
      - tag: buyer
"""


async def test_an_event_trigger_where_filters_on_the_props(db, sandbox_client, api,
                                                           clock) -> None:  # fmt: skip
    await new_users(db, sandbox_client, [801, 802, 803, 804])
    runner = make_runner(db, api, WHERE, clock)
    await runner.tick()
    async with create_session_factory(db).begin() as s:
        for uid, props in [(801, {"amount": 5, "currency": "RUB"}),
                           (802, {"amount": 20, "currency": "EUR"}),
                           (803, {"amount": 20}),
                           (804, {"amount": 20, "currency": "RUB", "test": True})]:  # fmt: skip
            await record(s, uid, "order.paid", props, source=EventSource.api)

    async def entered() -> list[int]:
        return [r.user_id for r in await runs(db)]

    assert await settle(runner, entered) == [802]


async def test_ticks_of_a_paused_schedule_enter_no_one(db, sandbox_client, api, clock) -> None:
    await new_users(db, sandbox_client, [611])
    async with create_session_factory(db).begin() as s:
        await set_values(s, 611, {"city": "Москва"})
    clock.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    runner = make_runner(db, api, DAILY, clock, options=_options())
    await runner.tick()
    async with create_session_factory(db)() as s:
        await set_paused(s, "daily", True)
        await s.commit()
    clock.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    await runner.tick()
    async with create_session_factory(db)() as s:
        await set_paused(s, "daily", False)
        await s.commit()
    await runner.tick()  # the paused tick is not taken again after the resume
    assert await runs(db) == []
    assert await last_tick(db) == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    clock.now = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    await runner.tick()
    assert [r.user_id for r in await runs(db)] == [611]


def test_schedule_ticks_follow_the_wall_clock_across_a_dst_change() -> None:
    berlin = zone("Europe/Berlin")  # clocks go forward on 2026-03-29 at 02:00
    first = next_tick("0 10 * * *", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), berlin)
    second = next_tick("0 10 * * *", first, berlin)
    assert first.astimezone(UTC) == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert second.astimezone(UTC) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    before = next_tick("0 10 * * *", datetime(2026, 3, 27, 12, 0, tzinfo=UTC), berlin)
    assert before.astimezone(UTC) == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)  # 10:00 CET
    # a tick inside the skipped hour is taken once, not lost
    skipped = next_tick("30 2 * * *", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), berlin)
    assert datetime(2026, 3, 29, 0, 0, tzinfo=UTC) < skipped.astimezone(UTC) \
        < datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # fmt: skip
