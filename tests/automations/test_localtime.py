"""Local time: `wait: {until: "10:00"}` in the user's zone across a DST change, and quiet hours
(both databases for the runner; pure functions alone)."""

from __future__ import annotations

from datetime import UTC, datetime

from relove.automations.localtime import next_local, parse_hhmm, quiet_until, user_zone, zone
from relove.automations.runner import RunnerOptions
from relove.db.engine import create_session_factory
from relove.events import EventSource, record
from tests.automations.conftest import bot_texts, make_runner, new_users, runs
from tests.automations.test_runs import settle

BERLIN = zone("Europe/Berlin")


def test_next_local_time_follows_daylight_saving() -> None:
    ten = parse_hhmm("10:00")
    # Berlin switches to summer time on 2026-03-29 at 02:00
    assert next_local(datetime(2026, 3, 28, 12, tzinfo=UTC), ten, BERLIN) == datetime(
        2026, 3, 29, 8, tzinfo=UTC)
    assert next_local(datetime(2026, 3, 27, 12, tzinfo=UTC), ten, BERLIN) == datetime(
        2026, 3, 28, 9, tzinfo=UTC)
    # a time that does not exist that night is taken after the jump (03:30 CEST)
    assert next_local(datetime(2026, 3, 28, 12, tzinfo=UTC), parse_hhmm("2:30"),
                      BERLIN) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # fmt: skip
    assert user_zone({"tz": "Nowhere/City"}, BERLIN) is BERLIN
    assert quiet_until(datetime(2026, 3, 1, 22, 30, tzinfo=UTC), (22, 9), BERLIN) == datetime(
        2026, 3, 2, 8, tzinfo=UTC)
    assert quiet_until(datetime(2026, 3, 1, 12, tzinfo=UTC), (22, 9), BERLIN) is None


MORNING = """
automations:
  - id: morning
    trigger: {event: order.paid}
    steps:
      - wait: {until: "10:00"}
      - send: "Доброе утро!"
"""


async def test_until_in_each_users_zone_and_quiet_hours(db, sandbox_client, api, clock) -> None:
    clock.now = datetime(2026, 3, 28, 12, tzinfo=UTC)
    runner = make_runner(db, api, MORNING, clock, options=RunnerOptions(
        rate=200, event_lag_seconds=0.2, default_tz=BERLIN, quiet_hours=(22, 9)))
    await runner.tick()
    await new_users(db, sandbox_client, [591, 592])
    sessions = create_session_factory(db)
    async with sessions.begin() as s:
        from relove.users.service import set_values

        await set_values(s, 591, {"tz": "Asia/Vladivostok"})
        for uid in (591, 592):
            await record(s, uid, "order.paid", source=EventSource.api)

    async def waiting() -> dict[int, datetime | None]:
        found = {r.user_id: r.due_at for r in await runs(db) if r.step == "2"}
        return found if len(found) == 2 else {}

    due = await settle(runner, waiting)
    assert due == {591: datetime(2026, 3, 29, 0, tzinfo=UTC),  # 10:00 in Vladivostok
                   592: datetime(2026, 3, 29, 8, tzinfo=UTC)}  # 10:00 CEST, the day DST starts
    clock.now = datetime(2026, 3, 29, 0, 0, 1, tzinfo=UTC)  # 02:00 in Berlin: quiet there
    await runner.tick()
    assert await bot_texts(sandbox_client, 591) == ["Доброе утро!"]
    assert await bot_texts(sandbox_client, 592) == []
    clock.now = datetime(2026, 3, 29, 8, 0, 1, tzinfo=UTC)
    await runner.tick()
    assert await bot_texts(sandbox_client, 592) == ["Доброе утро!"]
    # quiet hours: a send due at 23:30 Berlin time waits for 09:00
    async with sessions.begin() as s:
        await set_values(s, 591, {"tz": "Europe/Berlin"})
    clock.now = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)  # 23:30 CEST
    later = MORNING.replace('{until: "10:00"}', "1m").replace("id: morning", "id: later")
    quiet = make_runner(db, api, later, clock,
                        options=RunnerOptions(rate=200, event_lag_seconds=0.2,
                                              default_tz=BERLIN, quiet_hours=(22, 9)))
    await quiet.tick()
    async with sessions.begin() as s:
        await record(s, 591, "order.paid", source=EventSource.api)

    async def later_runs() -> list[datetime | None]:
        return [r.due_at for r in await runs(db, "later") if r.status == "waiting"]

    await settle(quiet, later_runs)  # entered: waiting a minute
    clock.now = datetime(2026, 3, 29, 21, 40, tzinfo=UTC)
    await quiet.tick()
    assert await later_runs() == [datetime(2026, 3, 30, 7, tzinfo=UTC)]  # 09:00 CEST
    assert await bot_texts(sandbox_client, 591) == ["Доброе утро!"]
    clock.now = datetime(2026, 3, 30, 7, 0, 1, tzinfo=UTC)
    await quiet.tick()
    assert await bot_texts(sandbox_client, 591) == ["Доброе утро!", "Доброе утро!"]
