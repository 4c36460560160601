"""The sandbox end to end: a new user presses Start in Telegram (the sandbox), the real bot's
touch records ``user.created``, the automation greets them; the day-1 message follows once the
clock moves. And the PostgreSQL commit-order hole: an event committed late is not lost."""

from __future__ import annotations

import asyncio

import pytest

from relove.automations.runner import RunnerOptions
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.events import EventSource, record
from tests.automations.conftest import bot_texts, make_runner, runs
from tests.automations.test_runs import settle
from tests.sandbox_fixtures import running_live_bot

WEEK = """
automations:
  - id: welcome
    trigger: {event: user.created}
    steps:
      - send: "Добро пожаловать, {{ user.first_name }}! Это <b>неделя знакомства</b>."
      - wait: 1d
      - send: "День первый: расскажи о себе."
"""


async def test_new_user_gets_the_welcome_then_day_one(live_bot, api, clock) -> None:
    runner = make_runner(live_bot.engine, api, WEEK, clock)
    await runner.tick()
    user = await live_bot.new_user("Аня<b>")
    await live_bot.client.start(user["id"])

    async def welcomed() -> list[str]:
        return [t for t in await bot_texts(live_bot.client, user["id"])
                if t.startswith("Добро пожаловать")]  # fmt: skip

    [text] = await settle(runner, welcomed)
    assert text == "Добро пожаловать, Аня<b>! Это неделя знакомства."  # the name is text
    await runner.tick()
    assert not [t for t in await bot_texts(live_bot.client, user["id"]) if "День" in t]
    clock.advance(days=1, seconds=1)
    await runner.tick()
    texts = await bot_texts(live_bot.client, user["id"])
    assert [t for t in texts if t.startswith(("Добро", "День"))] == [
        text, "День первый: расскажи о себе."]
    assert [r.status for r in await runs(live_bot.engine)] == ["completed"]


async def test_an_event_committed_late_is_not_skipped(db, database_url, sandbox_client, api,
                                                      clock) -> None:  # fmt: skip
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer: ids are handed out in commit order")
    yaml = WEEK.replace("user.created", "order.paid")
    runner = make_runner(db, api, yaml, clock, options=RunnerOptions(event_lag_seconds=300))
    await runner.tick()
    sessions = create_session_factory(db)
    async with sessions.begin() as s:
        s.add_all([User(id=701, first_name="Рано"), User(id=702, first_name="Поздно")])
    await sandbox_client.create_users([{"id": i, "first_name": "x", "started": True}
                                       for i in (701, 702)])  # fmt: skip
    late = sessions()
    await record(late, 702, "order.paid", source=EventSource.api)  # id n, not committed
    async with sessions.begin() as s:
        await record(s, 701, "order.paid", source=EventSource.api)  # id n+1, committed
    await runner.tick()
    await asyncio.sleep(0)
    assert await runs(db) == []  # stopped at the hole: 701's event waits behind it
    await late.commit()
    await late.close()

    async def both() -> bool:
        return len(await runs(db)) == 2

    await settle(runner, both)
    assert {r.user_id for r in await runs(db)} == {701, 702}


async def test_the_bot_process_runs_automations(db, sandbox, sandbox_client, tmp_path) -> None:
    path = tmp_path / "automations.yaml"
    path.write_text(WEEK)
    async with running_live_bot(db, sandbox, sandbox_client, automations_file=path,
                                automations_poll_seconds=0.1,
                                automations_event_lag_seconds=0.2) as live:  # fmt: skip
        user = await live.new_user("Боря")
        await live.client.start(user["id"])
        found = await live.client.wait_for_bot_message(
            user["id"], where=lambda m: m["text"].startswith("Добро пожаловать"), timeout=30)
        assert found["text"] == "Добро пожаловать, Боря! Это неделя знакомства."
    [run] = await runs(db)
    assert (run.status, run.step, run.sent) == ("waiting", "3", 1)
