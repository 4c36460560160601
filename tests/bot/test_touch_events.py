"""The touch writer records each update's events with its upsert (issue 10, "Writers: Touch"),
on both databases: through the dispatcher (one task per update, the middleware path) and
through the polling pipeline (a page per batch)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from aiogram.types import Update
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.bot.ingest import Ingest
from relove.db.models import CONTEXT_MAX_BYTES, User
from relove.events import Event, Message
from relove.users import service
from relove.users.touch import Touch, TouchWriter
from tests.bot.conftest import BotHarness
from tests.bot.fake_telegram import callback_update, member_update, message_update, tg_user


def _traffic(n: int, users: int, first_id: int) -> tuple[list[dict[str, Any]], dict[int, str]]:
    people = [tg_user(first_id + i, f"User{i}", username=f"u{i}") for i in range(users)]
    updates, last = [], {}
    for k in range(n):
        person = random.choice(people)
        text = f"message {k}" if k % 10 else f"/start ref{k}"  # some commands among texts
        updates.append(message_update(person, text))
        last[person["id"]] = text
    return updates, last


async def _events(session_factory: async_sessionmaker[AsyncSession]) -> list[Event]:
    async with session_factory() as session:
        return list((await session.scalars(select(Event).order_by(Event.at, Event.id))).all())


async def _check_exactly_once(
    session_factory: async_sessionmaker[AsyncSession], updates: list[dict[str, Any]],
    last: dict[int, str],
) -> None:  # fmt: skip
    touch_events = ("user.created", "message.received", "command.used")
    events = [e for e in await _events(session_factory) if e.name in touch_events]
    names = Counter(e.name for e in events)
    commands = sum(u["message"]["text"].startswith("/") for u in updates)
    assert names == {"message.received": len(updates) - commands, "command.used": commands,
                     "user.created": len(last)}  # fmt: skip
    per_message = Counter(e.props["message_id"] for e in events if "message_id" in e.props)
    assert set(per_message.values()) == {1}  # none lost, none doubled
    assert len(per_message) == len(updates)
    # user.created comes before the user's first event (the timeline's order: at, id).
    first: dict[int | None, str] = {}
    for e in events:
        first.setdefault(e.user_id, e.name)
    assert set(first.values()) == {"user.created"}
    async with session_factory() as session:
        messages = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in"))
        stored = dict((await session.execute(select(User.id, User.context))).all())
    assert messages == len(updates)  # the conversation's incoming side
    assert {uid: ctx["last_message"] for uid, ctx in stored.items()} == last


async def test_2000_concurrent_updates_record_exactly_2000_events(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    updates, last = _traffic(2000, 50, 40_000)
    results = await asyncio.gather(
        *(harness.dp.feed_raw_update(harness.bot, u) for u in updates), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    await _check_exactly_once(session_factory, updates, last)


async def test_2000_updates_through_the_polling_pipeline_record_exactly_2000_events(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    updates, last = _traffic(2000, 50, 41_000)
    ingest = Ingest(harness.dp, harness.bot, harness.dp["touch_writer"], texts=harness.dp["texts"])
    parsed = [Update.model_validate(u, context={"bot": harness.bot}) for u in updates]
    for i in range(0, len(parsed), 100):
        await ingest.put_page(parsed[i : i + 100])
    assert await ingest.drain(120)
    await ingest.close()
    assert ingest.stats.handled == 2000
    await _check_exactly_once(session_factory, updates, last)


async def test_buttons_and_blocks_become_events(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    kate = tg_user(42_000, "Kate")
    await harness.feed(
        message_update(kate, "hi"), callback_update(kate, "menu:1"), member_update(kate, "kicked")
    )
    touch_events = {"user.created", "message.received", "button.pressed", "user.blocked"}
    names = [e.name for e in await _events(session_factory) if e.name in touch_events]
    assert names == ["user.created", "message.received", "button.pressed", "user.blocked"]


async def test_events_off_records_none(db: AsyncEngine) -> None:
    writer = TouchWriter(db, events=False)
    from relove.events.updates import events_of_update

    update = Update.model_validate(message_update(tg_user(43_000), "hi"))
    await writer.touch(Touch(43_000, None, "A", None, "hi", True, events_of_update(update)))
    async with db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Event.__table__)) == 0
        assert await conn.scalar(select(func.count()).select_from(User.__table__)) == 1


async def test_a_bad_row_keeps_the_others_events(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    full = tg_user(44_000, "Full")
    await harness.feed(message_update(full, "x"))
    async with session_factory.begin() as session:
        await service.set_values(
            session, 44_000, {"blob": "y" * (CONTEXT_MAX_BYTES - 200)}, doc="context"
        )
    updates = [message_update(full, "z" * 1000)] + [
        message_update(tg_user(44_100 + i, "Ok"), f"ok {i}") for i in range(20)
    ]
    results = await asyncio.gather(
        *(harness.dp.feed_raw_update(harness.bot, u) for u in updates), return_exceptions=True
    )
    assert sum(isinstance(r, BaseException) for r in results) == 1
    names = Counter(e.name for e in await _events(session_factory))
    # The refused touch recorded nothing; the 20 others once each (+ the first "x").
    assert names == {"user.created": 21, "message.received": 21}
