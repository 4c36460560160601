"""The unit-of-work rule (relove/db/uow.py): read helpers never commit the caller's work, and a
unit that reads before it writes survives a concurrent writer on SQLite — on every backend."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from relove.conversation.reads import read_documents
from relove.db.models import User
from relove.db.uow import begin_write
from relove.users import service


@pytest.fixture
async def people(session_factory):
    async with session_factory.begin() as s:
        s.add_all([User(id=1, markers={"n": 0}), User(id=2, markers={"n": 0})])
    return session_factory


async def _markers(sessions, user_id: int) -> dict:
    async with sessions() as s:
        return (await service.get_user_documents(s, user_id))["markers"]


async def test_a_read_helper_never_commits_the_callers_writes(people):
    async with people() as s:
        await service.set_values(s, 1, {"city": "Москва"})  # a Core UPDATE: not ORM-"dirty"
        assert (await read_documents(s, 1))["markers"]["city"] == "Москва"
        await s.rollback()
    assert await _markers(people, 1) == {"n": 0}


async def test_begin_write_commits_nothing_the_unit_wrote(people):
    async with people() as s:
        await service.set_values(s, 1, {"city": "Москва"})
        await begin_write(s)
        await service.set_values(s, 1, {"vip": True})
        await s.rollback()
    assert await _markers(people, 1) == {"n": 0}


async def test_a_unit_that_reads_then_writes_survives_a_concurrent_writer(people):
    sqlite = people.kw["bind"].dialect.name == "sqlite"
    # Without the declaration: on SQLite the read's snapshot cannot become a write once
    # another connection has committed — the hazard begin_write exists for.
    async with people() as a:
        await read_documents(a, 1)
        async with people.begin() as b:
            await service.set_values(b, 2, {"by": "b"})
        if sqlite:
            with pytest.raises(OperationalError, match="locked"):
                await service.set_values(a, 1, {"by": "a"})
        else:
            await service.set_values(a, 1, {"by": "a"})
        await a.rollback()
    # Declared: the unit writes; the other writer waits for it and then succeeds too.
    async with people() as a:
        await begin_write(a)
        await read_documents(a, 1)

        async def other() -> None:
            async with people.begin() as b:
                await service.increment(b, 2, "n")

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        await service.increment(a, 1, "n")
        await a.commit()
        await task
    assert (await _markers(people, 1))["n"] == 1
    assert (await _markers(people, 2))["n"] == 1
