"""The update pipeline (relove.bot.ingest) through the product's dispatcher, on both databases.

Pages go in as polling hands them over; the Bot API is faked at the transport. Storage failures
inside a handler are simulated by the test's own handler raising what SQLAlchemy raises when
the database is locked or gone; the real outages (a cut TCP proxy, a locked SQLite file) are
in tests/bot/test_outage.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections import defaultdict
from typing import Any

import pytest
from aiogram import Bot, Router
from aiogram.types import Message, Update
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.bot.ingest import _PROCESSED, Ingest
from relove.db.models import User, UserSnapshot
from relove.events import Event
from relove.ops import metrics
from relove.users import service
from relove.users.touch import TouchWriter
from tests.bot.conftest import BotHarness
from tests.bot.fake_telegram import message_update, tg_user
from tests.sandbox_fixtures import eventually

APOLOGY = "Извините, у нас был короткий сбой"


def _locked() -> OperationalError:
    """What SQLAlchemy raises when SQLite stays locked past its busy timeout."""
    return OperationalError("UPDATE users …", {}, sqlite3.OperationalError("database is locked"))


def _probe_first(harness: BotHarness) -> Router:
    """A router in front of every other one (a feature a developer adds to the bot)."""
    probe = Router()
    harness.dp.sub_routers.insert(0, probe)
    probe._parent_router = harness.dp
    return probe


def _ingest(harness: BotHarness, *, grace: float | None = None, **kwargs: Any) -> Ingest:
    writer: TouchWriter = harness.dp["touch_writer"]
    if grace is not None:
        writer.grace = grace
    return Ingest(harness.dp, harness.bot, writer, texts=harness.dp["texts"], **kwargs)


def _parse(harness: BotHarness, raw: list[dict[str, Any]]) -> list[Update]:
    return [Update.model_validate(u, context={"bot": harness.bot}) for u in raw]


async def test_pages_are_touched_and_each_users_updates_run_in_order(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    seen: dict[int, list[str]] = defaultdict(list)
    probe = _probe_first(harness)

    async def record(message: Message, user: UserSnapshot) -> None:
        assert user.context.get("last_message")  # touched before it is handled
        await asyncio.sleep(random.random() / 200)  # handlers finish out of order
        seen[user.id].append(message.text or "")

    probe.message.register(record)
    people = [tg_user(30_000 + i, f"P{i}") for i in range(12)]
    raw, sent = [], defaultdict(list)
    for n in range(360):
        person = random.choice(people)
        raw.append(message_update(person, f"m{n}"))
        sent[person["id"]].append(f"m{n}")
    ingest = _ingest(harness)
    updates = _parse(harness, raw)
    handled, pending = _PROCESSED["handled"]._value.get(), metrics.UPDATES_PENDING._value.get()
    for i in range(0, len(updates), 40):
        await ingest.put_page(updates[i : i + 40])
    assert await ingest.drain(60)
    assert seen == sent
    assert ingest.stats.handled == 360 and ingest.stats.failed == 0
    # the metrics are current as soon as the pipeline is drained
    assert _PROCESSED["handled"]._value.get() - handled == 360
    assert metrics.UPDATES_PENDING._value.get() == pending
    async with session_factory() as session:
        users = {u.id: u for u in (await session.scalars(select(User))).all()}
        events = await session.scalar(
            select(func.count()).select_from(Event).where(Event.name == "message.received")
        )
    assert {uid: users[uid].context["last_message"] for uid in sent} == {
        uid: texts[-1] for uid, texts in sent.items()
    }
    assert events == 360
    await ingest.close()


async def test_put_page_waits_while_the_pipeline_is_full(harness: BotHarness) -> None:
    release = asyncio.Event()
    probe = _probe_first(harness)

    async def slow(message: Message) -> None:
        await release.wait()

    probe.message.register(slow)
    ingest = _ingest(harness, max_pending=10)
    users = [tg_user(31_000 + i) for i in range(10)]
    await ingest.put_page(_parse(harness, [message_update(u, "a") for u in users]))
    blocked = asyncio.create_task(
        ingest.put_page(_parse(harness, [message_update(users[0], "b")]))
    )
    await asyncio.sleep(0.2)
    assert not blocked.done()  # full: polling would pause here, taking (confirming) nothing
    first = ingest.settled_up_to()
    release.set()
    await asyncio.wait_for(blocked, 30)
    assert await ingest.drain(30)
    assert first is not None and ingest.settled_up_to() is not None
    assert ingest.settled_up_to() > first  # type: ignore[operator]
    await ingest.close()


async def test_a_handler_that_fails_on_storage_before_replying_runs_again(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[str] = []
    probe = _probe_first(harness)

    async def flaky(message: Message) -> None:
        runs.append(message.text or "")
        if len(runs) == 1:
            raise _locked()  # e.g. its first query hit the outage
        await message.answer(f"echo {message.text}")

    probe.message.register(flaky)
    ingest = _ingest(harness)
    caplog.set_level(logging.WARNING)
    await ingest.put_page(_parse(harness, [message_update(tg_user(32_000), "hello")]))
    assert await ingest.drain(30)
    assert runs == ["hello", "hello"]
    assert harness.telegram.sent_texts() == ["echo hello"]
    assert ingest.stats.retried == 1 and ingest.stats.handled == 1
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("relove")]
    assert sum("unavailable" in line for line in lines) == 1
    assert sum("is back after" in line and "1 updates waited" in line for line in lines) == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback for an outage
    await ingest.close()


async def test_a_handler_that_replied_before_failing_is_not_run_again(
    harness: BotHarness,
) -> None:
    runs = 0
    probe = _probe_first(harness)

    async def replies_then_fails(message: Message) -> None:
        nonlocal runs
        runs += 1
        await message.answer("first part")
        raise _locked()

    probe.message.register(replies_then_fails)
    ingest = _ingest(harness)
    await ingest.put_page(_parse(harness, [message_update(tg_user(32_100), "x")]))
    assert await ingest.drain(30)
    assert runs == 1
    assert harness.telegram.sent_texts() == ["first part"]  # no duplicate, no apology
    assert ingest.stats.failed == 1 and ingest.stats.retried == 0
    await ingest.close()


async def test_a_handler_that_committed_a_write_before_failing_is_not_run_again(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    probe = _probe_first(harness)

    async def writes_then_fails(message: Message, user: UserSnapshot) -> None:
        async with session_factory.begin() as session:
            await service.increment(session, user.id, "visits")
        raise _locked()

    probe.message.register(writes_then_fails)
    ingest = _ingest(harness)
    await ingest.put_page(_parse(harness, [message_update(tg_user(32_200), "x")]))
    assert await ingest.drain(30)
    async with session_factory() as session:
        user = await session.get(User, 32_200)
    assert user is not None and user.markers["visits"] == 1  # written once, not twice
    assert ingest.stats.failed == 1 and ingest.stats.retried == 0
    # Nothing was answered: the user hears that the message was lost.
    await eventually(lambda: _sent(harness, APOLOGY), timeout=30)
    await ingest.close()


async def test_an_update_past_the_grace_is_dropped_with_one_line_and_an_apology(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    probe = _probe_first(harness)
    runs = 0

    async def always_fails(message: Message) -> None:
        nonlocal runs
        runs += 1
        raise _locked()

    probe.message.register(always_fails)
    ingest = _ingest(harness, grace=0.5)
    caplog.set_level(logging.WARNING)
    await ingest.put_page(_parse(harness, [message_update(tg_user(32_300), "lost")]))
    assert await ingest.drain(30)
    # How many retries fit in the grace depends on the machine's speed; at least the first ran.
    assert runs >= 1 and ingest.stats.dropped == 1
    assert ingest.health.dropped == 1
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and "32300" in dropped[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]
    await eventually(lambda: _sent(harness, APOLOGY), timeout=30)
    assert ingest.stats.apologies == 1
    await ingest.close()


async def test_a_bug_in_a_handler_is_not_retried(harness: BotHarness) -> None:
    probe = _probe_first(harness)
    runs = 0

    async def buggy(message: Message) -> None:
        nonlocal runs
        runs += 1
        raise ValueError("a bug")

    probe.message.register(buggy)
    ingest = _ingest(harness)
    await ingest.put_page(_parse(harness, [message_update(tg_user(32_400), "x")]))
    assert await ingest.drain(30)
    assert runs == 1 and ingest.stats.failed == 1 and ingest.health.available
    await ingest.close()


async def _sent(harness: BotHarness, prefix: str) -> bool:
    return any(text.startswith(prefix) for text in harness.telegram.sent_texts())


async def test_outer_middlewares_run_for_every_update_also_ones_added_later(
    harness: BotHarness,
) -> None:
    """The pipeline chains the dispatcher's outer middlewares once; one registered while it
    runs still sees the updates after it, with the touched user and the dispatcher's data."""
    seen: list[tuple[int, int, bool]] = []

    async def outer(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        seen.append((event.update_id, data["user"].id, data["dispatcher"] is harness.dp))
        return await handler(event, data)

    ingest = _ingest(harness)
    first = _parse(harness, [message_update(tg_user(32_500), "a")])
    await ingest.put_page(first)
    assert await ingest.drain(30)
    harness.dp.update.outer_middleware(outer)
    second = _parse(harness, [message_update(tg_user(32_501), "b")])
    await ingest.put_page(second)
    assert await ingest.drain(30)
    assert seen == [(second[0].update_id, 32_501, True)]
    assert ingest.stats.handled == 2
    await ingest.close()


async def test_updates_not_mounted_on_the_bot_are_handled_with_it(harness: BotHarness) -> None:
    """As ``feed_update`` does: an update parsed without the bot, or for another Bot instance,
    reaches the handlers mounted on the pipeline's bot (so ``message.answer`` uses it)."""
    seen: list[tuple[str | None, bool]] = []
    probe = _probe_first(harness)

    async def record(message: Message) -> None:
        seen.append((message.text, message.bot is harness.bot))

    probe.message.register(record)
    other = Bot("42:OTHER")
    raw = [message_update(tg_user(32_600 + i), text) for i, text in enumerate("abc")]
    page = [Update.model_validate(raw[0]),
            Update.model_validate(raw[1], context={"bot": other}),
            Update.model_validate(raw[2], context={"bot": harness.bot})]  # fmt: skip
    ingest = _ingest(harness)
    await ingest.put_page(page)
    assert await ingest.drain(30)
    assert sorted(seen) == [("a", True), ("b", True), ("c", True)]
    await ingest.close()
    await other.session.close()


def test_the_fast_read_of_an_updates_bot_still_finds_it() -> None:
    # _mounted_bot reads aiogram's private value (the property costs ~4 µs per update); if an
    # aiogram upgrade renamed it the pipeline would fall back to the property silently and
    # slowly — this says so in CI instead
    from relove.bot.ingest import _mounted_bot

    bot = Bot("42:FAST")
    update = Update.model_validate(message_update(tg_user(32_700), "x"), context={"bot": bot})
    assert "_bot" in (update.__pydantic_private__ or {})
    assert _mounted_bot(update) is bot is update.bot
