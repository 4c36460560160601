"""Saved segments and filtered queries, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from relove.db.models import User
from relove.db.types import utcnow
from relove.errors import FilterError, InvalidInput, NotFound
from relove.segments import (
    count_users,
    delete_segment,
    find_user_ids,
    find_users,
    get_segment,
    list_segments,
    resolve_filter,
    save_segment,
)


@pytest.fixture
async def people(session_factory):
    now = utcnow()
    async with session_factory.begin() as s:
        s.add_all(
            [
                User(id=1, username="ivan", first_name="Иван", gender="male",
                     markers={"city": "Москва", "VIP": True, "interests": ["yoga", "art"]},
                     last_seen_at=now - timedelta(days=2)),
                User(id=2, username="anna", first_name="Анна", gender="female",
                     markers={"city": "Москва", "interests": ["art"], "tags": ["spam"]},
                     context={"summary": "likes art"}, last_seen_at=now - timedelta(days=40)),
                User(id=3, username="olga", first_name="Ольга", gender="female",
                     markers={"city": "Тверь", "VIP": "true", "score": 70}),
                User(id=4, first_name="Жанна", is_active=False, markers={"city": 5}),
            ]
        )  # fmt: skip
    return session_factory


async def test_count_and_find(people):
    async with people() as s:
        assert await count_users(s) == 4
        assert await count_users(s, 'city = "Москва" and VIP = true') == 1
        assert await count_users(s, 'first_name icontains "ан"') == 3
        assert await count_users(s, "last_seen_at > -30d") == 1
        assert await count_users(s, 'not tags contains "spam" and city exists') == 3
        found = await find_users(s, 'gender = "female"', limit=1)
        assert [u.id for u in found] == [2]
        page2 = await find_users(s, 'gender = "female"', limit=1, after_id=2)
        assert [u.id for u in page2] == [3]
        assert await find_user_ids(s, {"field": "markers.city", "op": "=", "value": 5}) == [4]


async def test_saved_segments_are_referenced_by_name(people):
    async with people.begin() as s:
        await save_segment(s, "moscow", 'city = "Москва"', description="Москвичи")
        await save_segment(s, "moscow art", 'segment:"moscow" and interests contains "art"')
    async with people() as s:
        assert await count_users(s, 'segment:"moscow art"') == 2
        assert await count_users(s, 'segment:"moscow art" and not VIP') == 1
        assert [seg.name for seg in await list_segments(s)] == ["moscow", "moscow art"]
        seg = await get_segment(s, "moscow")
        assert (seg.filter, seg.description) == ('city = "Москва"', "Москвичи")
        rows = await s.execute(select(User.id).where(await resolve_filter(s, 'segment:"moscow"')))
        assert sorted(rows.scalars()) == [1, 2]


async def test_saving_replaces_and_checks_references(people):
    async with people.begin() as s:
        await save_segment(s, "a", "VIP")
        await save_segment(s, "b", 'segment:"a" or city = "Тверь"')
    async with people.begin() as s:
        with pytest.raises(FilterError, match="refers to itself"):
            await save_segment(s, "a", 'segment:"b"')
        with pytest.raises(FilterError, match="unknown segment"):
            await save_segment(s, "c", 'segment:"zzz"')
        with pytest.raises(FilterError):
            await save_segment(s, "c", "city =")
        with pytest.raises(InvalidInput):
            await save_segment(s, " ", "VIP")
    async with people.begin() as s:
        await save_segment(s, "a", 'city = "Москва"')
    async with people() as s:
        assert await count_users(s, 'segment:"b"') == 3
        assert len(await list_segments(s)) == 2


async def test_delete_refuses_segments_in_use(people):
    async with people.begin() as s:
        await save_segment(s, "a", "VIP")
        await save_segment(s, "b", 'segment:"a"')
    async with people.begin() as s:
        with pytest.raises(InvalidInput, match="used by segment 'b'"):
            await delete_segment(s, "a")
        await delete_segment(s, "b")
        await delete_segment(s, "a")
        with pytest.raises(NotFound):
            await delete_segment(s, "a")


async def test_mixed_types_never_cause_a_database_error(people):
    async with people() as s:
        for text in ["city > 3", 'city < "z"', "city contains 5", 'city ~ "^М"',
                     "score between 1 and 100", 'interests icontains "Y"', "city.x.y = 1"]:
            await count_users(s, text)  # must not raise
        assert await count_users(s, "city > 3") == 1
        assert await count_users(s, 'city ~ "^м"') == 2


async def _plan_cache_mode(s) -> str | None:
    if s.get_bind().dialect.name != "postgresql":
        return None
    return (await s.execute(text("SHOW plan_cache_mode"))).scalar_one()


async def test_repeated_filters_are_planned_with_their_values(people):
    """One statement shape, many values: past PostgreSQL's five custom plans the counts stay
    exact, the statements keep being planned per value, and the setting ends with the
    transaction (a savepoint rolled back included)."""
    pg = people.kw["bind"].dialect.name == "postgresql"
    async with people() as s:
        for _ in range(4):
            assert await count_users(s, 'city = "Москва"') == 2
            assert await count_users(s, 'city = "Тверь"') == 1
            assert await count_users(s, "score >= 50") == 1
            assert await count_users(s, "score >= 80") == 0
        assert await _plan_cache_mode(s) == ("force_custom_plan" if pg else None)
        savepoint = await s.begin_nested()
        assert await count_users(s, 'gender = "female"') == 2
        await savepoint.rollback()
        assert await count_users(s, 'gender = "female"') == 2
        assert await _plan_cache_mode(s) == ("force_custom_plan" if pg else None)
        await s.commit()
        assert await _plan_cache_mode(s) == ("auto" if pg else None)
        assert await count_users(s) == 4  # no filter: nothing to plan per value
        assert await _plan_cache_mode(s) == ("auto" if pg else None)
