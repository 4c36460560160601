"""The marker service records ``marker.changed`` with the change itself (both databases)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.db.models import MARKERS_MAX_BYTES, User
from relove.errors import DocumentTooLarge, InvalidInput, NotFound
from relove.events import Event
from relove.users import service


async def _make_user(sessions: async_sessionmaker[AsyncSession], user_id: int = 1, **kw) -> None:
    async with sessions.begin() as session:
        session.add(User(id=user_id, **kw))


async def _events(sessions: async_sessionmaker[AsyncSession], user_id: int = 1) -> list[dict]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Event).where(Event.user_id == user_id).order_by(Event.id)
            )
        ).scalars()
        return [
            {"name": e.name, **e.props, "source": e.source, "actor": e.actor} for e in rows
        ]


async def test_set_records_each_changed_path_with_old_and_new(session_factory):
    await _make_user(session_factory, markers={"city": "Тверь", "keep": 1, "profile": {"age": 30}})
    async with session_factory.begin() as s:
        await service.set_values(
            s, 1, {"city": "Москва", "keep": 1, "profile.age": 31, "vip": True},
            source="cli", actor="admin:7",
        )
    events = await _events(session_factory)
    assert sorted(events, key=lambda e: e["key"]) == [
        {"name": "marker.changed", "key": "city", "old": "Тверь", "new": "Москва",
         "source": "cli", "actor": "admin:7"},
        {"name": "marker.changed", "key": "profile.age", "old": 30, "new": 31,
         "source": "cli", "actor": "admin:7"},
        {"name": "marker.changed", "key": "vip", "old": None, "new": True,
         "source": "cli", "actor": "admin:7"},
    ]


async def test_every_operation_records_only_real_changes(session_factory):
    await _make_user(session_factory, markers={"a": 1, "tags": ["x"], "n": 5})
    async with session_factory.begin() as s:
        await service.set_values(s, 1, {"a": 1})  # same value: nothing
        await service.set_once(s, 1, {"a": 2, "first": "ads"})  # a exists: only first
        await service.unset(s, 1, ["a", "missing"])  # missing: nothing
        await service.increment(s, 1, "n", 2)
        await service.increment(s, 1, "n", 0)  # no change
        await service.add_to_list(s, 1, "tags", "x")  # already there
        await service.add_to_list(s, 1, "tags", "y")
        await service.remove_from_list(s, 1, "tags", "zzz")  # not there
        await service.remove_from_list(s, 1, "tags", "x")
        await service.set_values_if(s, 1, {"state": "b"}, expect={"state": None})
        await service.set_values_if(s, 1, {"state": "c"}, expect={"state": "a"})  # refused
    events = [(e["key"], e["old"], e["new"], e["source"]) for e in await _events(session_factory)]
    assert events == [
        ("first", None, "ads", "system"),
        ("a", 1, None, "system"),
        ("n", 5, 7, "system"),
        ("tags", ["x"], ["x", "y"], "system"),
        ("tags", ["x", "y"], ["y"], "system"),
        ("state", None, "b", "system"),
    ]


async def test_context_changes_are_not_marker_events(session_factory):
    await _make_user(session_factory)
    async with session_factory.begin() as s:
        await service.set_values(s, 1, {"summary": "x"}, doc="context")
        await service.append_bounded(s, 1, "turns", {"t": 1}, keep=3)
    assert await _events(session_factory) == []


async def test_refused_operations_leave_no_event(session_factory):
    await _make_user(session_factory, markers={"city": "Москва"})
    async with session_factory() as s:
        with pytest.raises(InvalidInput):
            await service.increment(s, 1, "city")
        with pytest.raises(NotFound):
            await service.set_values(s, 2, {"a": 1})
        with pytest.raises(DocumentTooLarge):
            await service.set_values(s, 1, {"big": "x" * MARKERS_MAX_BYTES})
        await s.commit()
    assert await _events(session_factory) == []


async def test_bad_source_or_actor_is_refused_before_any_write(session_factory):
    await _make_user(session_factory)
    async with session_factory() as s:
        with pytest.raises(InvalidInput, match="unknown event source"):
            await service.set_values(s, 1, {"a": 1}, source="telepathy")
        with pytest.raises(InvalidInput, match="actor"):
            await service.set_values(s, 1, {"a": 1}, actor="x" * 500)
    assert await _events(session_factory) == []


async def test_large_values_are_left_out_of_the_event(session_factory):
    await _make_user(session_factory)
    big = "я" * 5000  # 10 KB as UTF-8: past the props limit
    async with session_factory.begin() as s:
        await service.set_values(s, 1, {"bio": big}, source="api", actor="crm")
        await service.set_values(s, 1, {"bio": "short"}, source="api", actor="crm")
    first, second = await _events(session_factory)
    assert first == {"name": "marker.changed", "key": "bio", "old": None, "new": None,
                     "truncated": True, "source": "api", "actor": "crm"}
    assert second["old"] is None and second["new"] == "short" and second["truncated"] is True


async def test_concurrent_operations_form_a_consistent_chain(db, session_factory):
    """60 concurrent increments and sets on one user: the events, in id order, chain exactly
    (each old is the previous new) and end at the stored value."""
    await _make_user(session_factory, markers={"n": 0})

    async def op(i: int) -> None:
        for attempt in range(50):
            try:
                async with session_factory.begin() as s:
                    if i % 3 == 1:  # a value no chain of increments reaches
                        await service.set_values(s, 1, {"n": -1000 * i}, source="api", actor=str(i))
                    else:
                        await service.increment(s, 1, "n", 1, source="bot", actor=str(i))
                return
            except Exception as e:  # SQLite: a writer may find the database busy; retry
                if "locked" not in str(e) or attempt == 49:
                    raise
                await asyncio.sleep(0.05)

    await asyncio.gather(*(op(i) for i in range(60)))
    events = await _events(session_factory)
    assert len(events) == 60
    assert {e["actor"] for e in events} == {str(i) for i in range(60)}
    previous = 0
    for e in events:
        assert e["key"] == "n" and e["old"] == previous
        previous = e["new"]
    async with session_factory() as s:
        markers = (await service.get_user_documents(s, 1))["markers"]
    assert markers["n"] == previous
