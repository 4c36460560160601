"""append_bounded and set_values_if: one atomic statement each, on both databases."""

from __future__ import annotations

import asyncio

import pytest

from relove.db.models import User
from relove.errors import InvalidInput, NotFound
from relove.users.service import append_bounded, get_user_documents, set_values, set_values_if


async def _user(session_factory, uid: int = 1, **context) -> None:
    async with session_factory() as s:
        s.add(User(id=uid, context=dict(context)))
        await s.commit()


async def test_append_keeps_last_n_in_order(session_factory):
    await _user(session_factory, other="kept")
    async with session_factory() as s:
        for i in range(7):
            result = await append_bounded(s, 1, "turns", {"n": i, "t": f"т{i}"}, keep=3)
        await s.commit()
    assert result == [{"n": 4, "t": "т4"}, {"n": 5, "t": "т5"}, {"n": 6, "t": "т6"}]
    async with session_factory() as s:
        docs = await get_user_documents(s, 1)
    assert docs["context"]["turns"] == result
    assert docs["context"]["other"] == "kept"


async def test_append_scalars_and_nested_path(session_factory):
    await _user(session_factory, recent="not a list")
    async with session_factory() as s:
        assert await append_bounded(s, 1, "recent", "a", keep=2) == ["a"]
        await append_bounded(s, 1, "recent", True, keep=2)
        assert await append_bounded(s, 1, "recent", 3, keep=2) == [True, 3]
        assert await append_bounded(s, 1, "a.b", None, keep=5) == [None]
        assert await append_bounded(s, 1, "a.b", [1, "x"], keep=5) == [None, [1, "x"]]
        await s.commit()


async def test_append_rejects_bad_keep_and_missing_user(session_factory):
    await _user(session_factory)
    async with session_factory() as s:
        with pytest.raises(InvalidInput):
            await append_bounded(s, 1, "t", 1, keep=0)
        with pytest.raises(NotFound):
            await append_bounded(s, 99, "t", 1, keep=3)


async def test_concurrent_appends_lose_nothing(session_factory):
    await _user(session_factory)

    async def add(i: int) -> None:
        async with session_factory() as s:
            await append_bounded(s, 1, "log", i, keep=100)
            await s.commit()

    await asyncio.gather(*(add(i) for i in range(20)))
    async with session_factory() as s:
        log = (await get_user_documents(s, 1))["context"]["log"]
    assert sorted(log) == list(range(20))


async def test_set_values_if(session_factory):
    await _user(session_factory, other=1)
    async with session_factory() as s:
        # expectation "missing" holds
        doc = await set_values_if(s, 1, {"v": 1, "s": "a"}, expect={"v": None}, doc="context")
        assert doc == {"other": 1, "v": 1, "s": "a"}
        # stale expectation: nothing changes
        assert await set_values_if(s, 1, {"s": "b"}, expect={"v": 0}, doc="context") is None
        doc = await set_values_if(s, 1, {"s": "c", "v": 2}, expect={"v": 1}, doc="context")
        assert doc["s"] == "c" and doc["v"] == 2
        await set_values(s, 1, {"name": "x"}, doc="context")
        doc = await set_values_if(s, 1, {"ok": True}, expect={"name": "x"}, doc="context")
        assert doc["ok"] is True
        with pytest.raises(NotFound):
            await set_values_if(s, 2, {"a": 1}, expect={}, doc="context")
        await s.commit()
