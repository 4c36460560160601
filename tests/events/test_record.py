"""Writing events: record / record_many, limits, dedupe per day, the batch SQL (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, func, select, text

from relove.db.types import UTCDateTime
from relove.errors import InvalidInput
from relove.events import (
    Event,
    EventSource,
    Message,
    NewEvent,
    NewMessage,
    batch_insert,
    record,
    record_many,
)
from relove.events.models import PROPS_MAX_BYTES


async def _all(session_factory) -> list[Event]:
    async with session_factory() as s:
        return list((await s.execute(select(Event).order_by(Event.id))).scalars())


async def test_record_writes_one_event_in_the_callers_transaction(session_factory):
    at = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
    async with session_factory.begin() as s:
        await record(s, 7, "order.paid", {"sum": 1200, "items": ["a"], "note": "ёж"},
                     source="api", actor="crm", at=at)  # fmt: skip
    async with session_factory() as s:  # a rolled-back transaction leaves nothing
        await record(s, 7, "order.paid", source=EventSource.api)
        await s.rollback()
    (event,) = await _all(session_factory)
    assert (event.user_id, event.name, event.source, event.actor, event.at) == (
        7, "order.paid", "api", "crm", at)
    assert event.props == {"sum": 1200, "items": ["a"], "note": "ёж"}


async def test_events_without_a_user_and_default_time(session_factory):
    before = datetime.now(UTC)
    async with session_factory.begin() as s:
        await record(s, None, "import.completed", {"created": 3}, source="import")
    (event,) = await _all(session_factory)
    assert event.user_id is None and before <= event.at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Order Paid"}, "not object.action"),
        ({"name": "paid"}, "not object.action"),
        ({"name": "a." + "b" * 120}, "not object.action"),
        ({"props": {"x": "y" * PROPS_MAX_BYTES}}, "limit is"),
        ({"props": {"x": float("nan")}}, "JSON"),
        ({"props": ["not", "an", "object"]}, "JSON object"),
        ({"source": "telepathy"}, "unknown event source"),
        ({"actor": "a" * 300}, "actor"),
        ({"dedupe_key": ""}, "dedupe key"),
        ({"at": datetime(2026, 1, 1)}, "naive"),  # noqa: DTZ001 - refused on purpose
    ],
)
async def test_bad_events_are_refused_with_one_line(session_factory, kwargs, message):
    args = {"name": "order.paid", "props": None, "source": "api", **kwargs}
    async with session_factory.begin() as s:
        with pytest.raises(InvalidInput, match=message):
            await record(s, 1, args.pop("name"), args.pop("props"), **args)
    assert await _all(session_factory) == []


async def test_record_many_is_one_batch_with_per_event_overrides(session_factory):
    events = [NewEvent(i, "page.viewed", {"n": i}) for i in range(1, 501)]
    events.append(NewEvent(9, "admin.note", {}, source="cli", actor="cli:ops"))
    async with session_factory.begin() as s:
        assert await record_many(s, events, source="api", actor="site") == 501
    stored = await _all(session_factory)
    assert len(stored) == 501
    assert {(e.source, e.actor) for e in stored[:500]} == {("api", "site")}
    assert (stored[-1].source, stored[-1].actor) == ("cli", "cli:ops")
    assert [e.props["n"] for e in stored[:500]] == list(range(1, 501))


async def test_dedupe_key_is_unique_per_day(session_factory):
    day = datetime(2026, 4, 10, 9, tzinfo=UTC)
    async with session_factory.begin() as s:
        await record(s, 1, "order.paid", {"try": 1}, source="api", at=day, dedupe_key="o-1")
        await record(s, 1, "order.paid", {"try": 2}, source="api", at=day + timedelta(hours=5),
                     dedupe_key="o-1")  # fmt: skip  # same day: skipped
        await record_many(s, [NewEvent(1, "order.paid", {"try": 3}, dedupe_key="o-1",
                                       at=day + timedelta(days=1))], source="api")  # fmt: skip
        await record(s, 1, "order.paid", {"try": 4}, source="api", at=day, dedupe_key="o-2")
        await record(s, 1, "order.paid", {"try": 5}, source="api", at=day)  # no key
        await record(s, 1, "order.paid", {"try": 6}, source="api", at=day)
    assert [e.props["try"] for e in await _all(session_factory)] == [1, 3, 4, 5, 6]


async def test_events_may_carry_conversation_messages(session_factory):
    async with session_factory.begin() as s:
        await record_many(s, [
            NewEvent(5, "message.received", {"type": "text"},
                     message=NewMessage("text", "привет <b>", 11)),
            NewEvent(5, "button.pressed", {"data": "x"}, message=NewMessage("button", "Да")),
            NewEvent(None, "import.completed", {}, message=NewMessage("text", "no user")),
            NewEvent(5, "marker.changed", {}),
        ], source="bot")  # fmt: skip
    async with session_factory() as s:
        rows = (await s.execute(select(Message).order_by(Message.id))).scalars().all()
    assert [(m.user_id, m.direction, m.kind, m.text, m.message_id, m.source) for m in rows] == [
        (5, "in", "text", "привет <b>", 11, "bot"),
        (5, "in", "button", "Да", None, "bot"),
    ]


async def test_batch_insert_folds_into_another_statement(db, session_factory):
    """How the touch batch uses it: as CTEs in front of its own statement on PostgreSQL, as
    statements of the same transaction on SQLite."""
    insert = batch_insert(db.dialect.name)
    payload = insert.encode(
        [NewEvent(3, "message.received", {"type": "text"}, message=NewMessage("text", "hi", 1))],
        source="bot", check=False,
    )
    now = datetime.now(UTC)
    async with db.begin() as conn:
        if db.dialect.name == "postgresql":
            stmt = text(f"WITH {insert.ctes} SELECT 42").bindparams(
                bindparam("now", type_=UTCDateTime())
            )
            assert (await conn.execute(stmt, {"events": payload, "now": now})).scalar() == 42
        else:
            for stmt in insert.statements:
                await conn.execute(stmt, {"events": payload, "now": now})
    async with session_factory() as s:
        assert await s.scalar(select(func.count()).select_from(Event)) == 1
        assert await s.scalar(select(func.count()).select_from(Message)) == 1


async def test_a_batch_with_oversized_props_is_refused_whole(session_factory):
    events = [NewEvent(1, "a.b", {"n": 1}), NewEvent(2, "a.b", {"x": "я" * PROPS_MAX_BYTES})]
    async with session_factory() as s:
        with pytest.raises(InvalidInput, match="at most 8192 bytes"):
            await record_many(s, events, source="api")
        await s.rollback()
    assert await _all(session_factory) == []
