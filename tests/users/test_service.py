"""The marker/context service: each operation atomic, on both databases."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.db.models import MARKERS_MAX_BYTES, User
from relove.errors import DocumentTooLarge, InvalidInput, InvalidKey, NotFound
from relove.users import service


async def _make_user(sessions: async_sessionmaker[AsyncSession], user_id: int = 1, **kw) -> None:
    async with sessions.begin() as session:
        session.add(User(id=user_id, **kw))


async def _docs(sessions: async_sessionmaker[AsyncSession], user_id: int = 1) -> dict:
    async with sessions() as session:
        return await service.get_user_documents(session, user_id)


async def test_set_merges_keys_and_nested_paths(session_factory):
    await _make_user(session_factory, markers={"keep": 1, "profile": "flat"})
    async with session_factory.begin() as s:
        out = await service.set_values(
            s, 1, {"city": "Москва", "profile.age": 30, "profile.langs": ["ru"], "vip": True}
        )
    expected = {"keep": 1, "city": "Москва", "vip": True, "profile": {"age": 30, "langs": ["ru"]}}
    assert out == expected
    assert (await _docs(session_factory))["markers"] == expected


async def test_set_once_keeps_existing_values(session_factory):
    await _make_user(session_factory, markers={"source": "instagram"})
    async with session_factory.begin() as s:
        out = await service.set_once(s, 1, {"source": "ads", "first_seen.campaign": "nov"})
    assert out == {"source": "instagram", "first_seen": {"campaign": "nov"}}


async def test_set_null_is_a_value_not_a_delete(session_factory):
    await _make_user(session_factory, markers={"a": 1})
    async with session_factory.begin() as s:
        assert await service.set_values(s, 1, {"a": None}) == {"a": None}
        assert await service.set_once(s, 1, {"a": 5}) == {"a": None}


async def test_unset_removes_paths_and_ignores_missing(session_factory):
    await _make_user(session_factory, markers={"a": 1, "b": {"c": 2, "d": 3}})
    async with session_factory.begin() as s:
        out = await service.unset(s, 1, ["a", "b.c", "missing", "b.zz"])
    assert out == {"b": {"d": 3}}


async def test_context_document(session_factory):
    await _make_user(session_factory, markers={"m": 1})
    async with session_factory.begin() as s:
        await service.set_values(s, 1, {"summary": "любит йогу"}, doc="context")
    docs = await _docs(session_factory)
    assert docs == {"markers": {"m": 1}, "context": {"summary": "любит йогу"}}


async def test_increment(session_factory):
    await _make_user(session_factory, markers={"score": 10, "city": "Москва"})
    async with session_factory.begin() as s:
        assert await service.increment(s, 1, "score") == 11
        assert await service.increment(s, 1, "score", -3) == 8
        assert await service.increment(s, 1, "visits.total", 2) == 2
        assert await service.increment(s, 1, "rating", 0.5) == 0.5
    async with session_factory() as s:
        with pytest.raises(InvalidInput, match="not a number"):
            await service.increment(s, 1, "city")
        for bad in (float("nan"), float("inf"), True, "1"):
            with pytest.raises(InvalidInput, match="finite number"):
                await service.increment(s, 1, "score", bad)
    assert (await _docs(session_factory))["markers"]["city"] == "Москва"


async def test_list_add_and_remove(session_factory):
    await _make_user(session_factory, markers={"tags": ["a"], "city": "Москва"})
    async with session_factory.begin() as s:
        assert await service.add_to_list(s, 1, "tags", "b", "a", "йога") == ["a", "b", "йога"]
        assert await service.add_to_list(s, 1, "interests", "yoga") == ["yoga"]
        assert await service.add_to_list(s, 1, "flags", True, 1) == [True, 1]
        assert await service.remove_from_list(s, 1, "tags", "a", "zzz") == ["b", "йога"]
        assert await service.remove_from_list(s, 1, "flags", True) == [1]
        assert await service.remove_from_list(s, 1, "nothing", "x") == []
    async with session_factory() as s:
        with pytest.raises(InvalidInput, match="not a list"):
            await service.add_to_list(s, 1, "city", "x")


@pytest.mark.parametrize(
    "key", ["", " ", "a" * 65, "bad\x00key", "tab\tkey", 'quo"te', "a..b", ".lead", "tags.0", "7"]
)
async def test_invalid_keys_are_refused(session_factory, key):
    await _make_user(session_factory)
    async with session_factory() as s:
        with pytest.raises(InvalidKey):
            await service.set_values(s, 1, {key: 1})


async def test_missing_user(session_factory):
    async with session_factory() as s:
        with pytest.raises(NotFound):
            await service.set_values(s, 404, {"a": 1})


async def test_size_limit_refuses_and_changes_nothing(session_factory):
    await _make_user(session_factory, markers={"keep": "me"})
    async with session_factory() as s:
        with pytest.raises(DocumentTooLarge):
            await service.set_values(s, 1, {"big": "x" * MARKERS_MAX_BYTES})
        await s.rollback()
    async with session_factory.begin() as s:  # just under the limit still fits
        await service.set_values(s, 1, {"big": "x" * (MARKERS_MAX_BYTES - 100)})
    assert (await _docs(session_factory))["markers"]["keep"] == "me"


async def test_concurrent_operations_lose_nothing(session_factory):
    """Many writers on one user at once: every operation lands."""
    await _make_user(session_factory)
    n = 60

    async def op(i: int) -> None:
        async with session_factory.begin() as s:
            if i % 3 == 0:
                await service.increment(s, 1, "counter")
            elif i % 3 == 1:
                await service.add_to_list(s, 1, "tags", f"t{i}")
            else:
                await service.set_values(s, 1, {f"k{i}": i})

    await asyncio.gather(*(op(i) for i in range(n)))
    markers = (await _docs(session_factory))["markers"]
    assert markers["counter"] == n // 3
    assert sorted(markers["tags"]) == sorted(f"t{i}" for i in range(n) if i % 3 == 1)
    assert all(markers[f"k{i}"] == i for i in range(n) if i % 3 == 2)
