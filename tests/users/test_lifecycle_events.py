"""Gender, active state and deletion record their events with the change (both databases)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from relove.db.models import Gender, User
from relove.events import Event, Message, NewEvent, NewMessage, record_many
from relove.users.lifecycle import delete_user, set_active, set_gender


async def _events(session_factory) -> list[tuple]:
    async with session_factory() as s:
        rows = (await s.execute(select(Event).order_by(Event.id))).scalars()
        return [(e.user_id, e.name, e.props, e.source, e.actor) for e in rows]


async def test_gender_changes_are_recorded_only_when_real(session_factory):
    async with session_factory.begin() as s:
        s.add(User(id=1))
    async with session_factory.begin() as s:
        assert await set_gender(s, 1, "female", only_if_unknown=True) is True
        assert await set_gender(s, 1, "male", only_if_unknown=True) is False  # not unknown
        assert await set_gender(s, 1, Gender.female, source="cli") is False  # same value
        assert await set_gender(s, 1, "male", source="bot", actor="admin:1") is True
        assert await set_gender(s, 2, "male") is False  # no such user
    assert await _events(session_factory) == [
        (1, "user.gender_changed", {"old": "unknown", "new": "female"}, "system", None),
        (1, "user.gender_changed", {"old": "female", "new": "male"}, "bot", "admin:1"),
    ]


async def test_set_active_reports_each_real_change_once(session_factory):
    async with session_factory.begin() as s:
        s.add_all([User(id=1), User(id=2, is_active=False), User(id=3)])
    async with session_factory.begin() as s:
        assert await set_active(s, [1, 2, 3, 4], False, source="broadcast") == [1, 3]
        assert await set_active(s, [1, 3], False, source="broadcast") == []
        assert await set_active(s, 1, True) == [1]
    assert await _events(session_factory) == [
        (1, "user.blocked", {}, "broadcast", None),
        (3, "user.blocked", {}, "broadcast", None),
        (1, "user.unblocked", {}, "system", None),
    ]


async def test_concurrent_blocks_record_one_event(session_factory):
    async with session_factory.begin() as s:
        s.add(User(id=1))

    async def block() -> list[int]:
        for _ in range(50):
            try:
                async with session_factory.begin() as s:
                    return await set_active(s, [1], False, source="broadcast")
            except Exception as e:  # SQLite busy: retry
                if "locked" not in str(e):
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("never got the lock")

    results = await asyncio.gather(*(block() for _ in range(10)))
    assert sorted(results) == [[]] * 9 + [[1]]
    assert [e[1] for e in await _events(session_factory)] == ["user.blocked"]


async def test_delete_user_forgets_history_and_keeps_only_the_id(session_factory):
    async with session_factory.begin() as s:
        s.add_all([User(id=1), User(id=2)])
    async with session_factory.begin() as s:
        await record_many(s, [
            NewEvent(1, "message.received", {"type": "text"}, message=NewMessage("text", "secret")),
            NewEvent(1, "marker.changed", {"key": "city", "old": None, "new": "Москва"}),
            NewEvent(2, "message.received", {"type": "text"}, message=NewMessage("text", "other")),
        ], source="bot")  # fmt: skip
    async with session_factory.begin() as s:
        assert await delete_user(s, 1, source="bot") is True
        assert await delete_user(s, 99) is False
    events = await _events(session_factory)
    assert [e for e in events if e[0] == 1] == [(1, "user.deleted", {}, "bot", None)]
    assert len([e for e in events if e[0] == 2]) == 1
    async with session_factory() as s:
        texts = (await s.execute(select(Message.text))).scalars().all()
        users = await s.scalar(select(func.count()).select_from(User))
    assert texts == ["other"] and users == 1
