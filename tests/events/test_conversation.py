"""The conversation both ways: incoming messages, logged replies, operator messages,
broadcasts received, paged newest first (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from relove.broadcasts.conversation import conversation
from relove.broadcasts.models import Broadcast, Delivery
from relove.db.models import User
from relove.errors import InvalidInput
from relove.events import Event, NewEvent, NewMessage, record_many
from relove.events.conversation import MessageLog, record_outgoing

T0 = datetime(2026, 6, 1, 10, tzinfo=UTC)


async def test_the_whole_conversation_in_order_and_in_pages(db, session_factory):
    async with session_factory.begin() as s:
        s.add_all([User(id=1, first_name="Анна"), User(id=2)])
        await record_many(s, [
            NewEvent(1, "message.received", {}, at=T0, message=NewMessage("text", "привет", 5)),
            NewEvent(1, "button.pressed", {}, at=T0 + timedelta(seconds=2),
                     message=NewMessage("button", "Да")),
        ], source="bot")  # fmt: skip
    log = MessageLog(db)
    log.add(1, "Здравствуйте!", message_id=6)
    await log.close()
    async with session_factory.begin() as s:
        await record_outgoing(s, 1, "Это оператор <b>", message_id=7, actor="admin:9")
        b = Broadcast(name="весна", text="Привет, {{ user.first_name }}!", buttons=[],
                      filter="true", status="finished", options={})  # fmt: skip
        s.add(b)
        await s.flush()
        await s.execute(insert(Delivery.__table__).values(
            broadcast_id=b.id, user_id=1, status="sent", attempts=1, message_id=8,
            sent_at=datetime.now(UTC) + timedelta(hours=1)))
        await s.execute(insert(Delivery.__table__).values(
            broadcast_id=b.id, user_id=2, status="sent", attempts=1, message_id=9,
            sent_at=datetime.now(UTC)))  # someone else's
    async with session_factory() as s:
        items, cursor = [], None
        while True:
            page = await conversation(s, 1, limit=2, cursor=cursor)
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        sent = (await s.execute(select(Event).where(Event.name == "message.sent"))).scalars()
        sent_events = [(e.user_id, e.props, e.source, e.actor) for e in sent]
    assert [(i.direction, i.kind, i.text) for i in items] == [
        ("out", "broadcast", "Привет, {{ user.first_name }}!"),
        ("out", "operator", "Это оператор <b>"),
        ("out", "reply", "Здравствуйте!"),
        ("in", "button", "Да"),
        ("in", "text", "привет"),
    ]
    assert items[0].broadcast_name == "весна" and items[1].actor == "admin:9"
    assert sent_events == [(1, {"message_id": 7, "kind": "operator"}, "console", "admin:9")]


async def test_the_log_keeps_a_bounded_queue(db):
    log = MessageLog(db, flush_every=3600, max_queue=3)
    for i in range(5):
        log.add(1, f"m{i}", message_id=i)
    assert log.dropped == 2
    await log.close()
    async with db.connect() as conn:
        from relove.events import Message

        texts = (await conn.execute(select(Message.text).order_by(Message.id))).scalars().all()
    assert texts == ["m2", "m3", "m4"]


async def test_bad_cursor(session_factory):
    async with session_factory() as s:
        with pytest.raises(InvalidInput, match="cursor"):
            await conversation(s, 1, cursor="zzz")
