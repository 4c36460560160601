"""Analytics on every backend: overview, breakdowns (list elements counted), activity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from relove.analytics import activity, breakdown, new_per_day, overview
from relove.db.models import User
from relove.errors import FilterError, InvalidInput

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
async def audience(session_factory):
    rows = [
        dict(id=1, gender="female", created_at=NOW - timedelta(hours=1),
             last_seen_at=NOW - timedelta(hours=2),
             markers={"source": "ads", "interests": ["yoga", "art", "yoga"], "city": "Москва"}),
        dict(id=2, gender="female", created_at=NOW - timedelta(days=1),
             last_seen_at=NOW - timedelta(days=3),
             markers={"source": "ads", "interests": ["art"], "city": "Москва"}),
        dict(id=3, gender="male", created_at=NOW - timedelta(days=2),
             last_seen_at=NOW - timedelta(days=20),
             markers={"source": "instagram", "interests": "yoga", "city": 77}),
        dict(id=4, is_active=False, created_at=NOW - timedelta(days=30),
             markers={"interests": [1, True, None], "city": True}),
        dict(id=5, created_at=NOW - timedelta(days=1), markers={"interests": []}),
    ]  # fmt: skip
    async with session_factory.begin() as s:
        s.add_all(User(updated_at=NOW, **r) for r in rows)
    return session_factory


async def test_breakdown_counts_each_list_element_once_per_user(audience):
    async with audience() as s:
        b = await breakdown(s, "interests")
    counts = {(type(r.value).__name__, r.value): r.count for r in b.rows}
    assert counts == {("str", "yoga"): 2, ("str", "art"): 2, ("int", 1): 1, ("bool", True): 1}
    assert b.total == 5
    assert b.not_set == 1  # user 4's null element
    assert b.distinct == 4 and b.other == 0
    assert b.rows[0].share == pytest.approx(0.4)


async def test_breakdown_is_type_strict_and_respects_filter_and_top(audience):
    async with audience() as s:
        b = await breakdown(s, "city", top=1)
        assert (b.rows[0].value, b.rows[0].count) == ("Москва", 2)
        assert (b.total, b.not_set, b.distinct, b.other) == (5, 1, 3, 2)
        f = await breakdown(s, "markers.city", 'gender = "female"')
        assert [(r.value, r.count, r.share) for r in f.rows] == [("Москва", 2, 1.0)]


async def test_breakdown_by_columns(audience):
    async with audience() as s:
        g = await breakdown(s, "gender")
        assert {r.value: r.count for r in g.rows} == {"female": 2, "male": 1, "unknown": 2}
        a = await breakdown(s, "is_active")
        assert {r.value: r.count for r in a.rows} == {True: 4, False: 1}
        d = await breakdown(s, "created_at")
        assert {r.value: r.count for r in d.rows}[(NOW - timedelta(days=1)).date().isoformat()] == 2
        u = await breakdown(s, "username")
        assert u.rows == [] and u.not_set == 5


async def test_activity_and_new_users(audience):
    async with audience() as s:
        act = await activity(s, now=NOW)
        assert (act.total, act.dau, act.wau, act.mau) == (5, 1, 2, 3)
        days = await new_per_day(s, 3, now=NOW)
        assert days == [(date(2026, 11, 25), 1), (date(2026, 11, 26), 2), (date(2026, 11, 27), 1)]


async def test_overview(audience):
    async with audience() as s:
        o = await overview(s, days=7, now=NOW)
    assert (o.total, o.active, o.inactive) == (5, 4, 1)
    assert o.by_gender == {"female": 2, "male": 1, "unknown": 2}
    assert [(r.value, r.count) for r in o.by_source.rows] == [("ads", 2), ("instagram", 1)]
    assert o.by_source.not_set == 2
    assert sum(n for _, n in o.new_per_day) == 4
    data = o.to_dict()
    assert data["activity"]["mau"] == 3 and len(data["new_per_day"]) == 7


async def test_bad_input(audience):
    async with audience() as s:
        with pytest.raises(FilterError):
            await breakdown(s, "city", "city =")
        with pytest.raises(FilterError):
            await breakdown(s, "markers")
        with pytest.raises(InvalidInput):
            await breakdown(s, "city", top=0)


async def test_breakdown_by_nested_path_and_repeated_runs(session_factory):
    async with session_factory.begin() as s:
        s.add_all(
            User(id=i, updated_at=NOW, markers=m)
            for i, m in enumerate([{"n": {"x": "a"}}, {"n": {"x": "a"}}, {"n": {"x": 1.0}},
                                   {"n": {"x": 1}}, {"n": "x"}, {}], start=1)
        )  # fmt: skip
    async with session_factory() as s:
        for _ in range(7):  # past PostgreSQL's five custom plans: the same answer
            b = await breakdown(s, "markers.n.x")
            assert {r.value: r.count for r in b.rows} == {"a": 2, 1: 2}  # 1 and 1.0 are one
            assert (b.total, b.not_set, b.distinct, b.other) == (6, 2, 2, 0)
            f = await breakdown(s, "markers.n.x", "n.x = 1")
            assert [(r.value, r.count) for r in f.rows] == [(1, 2)] and f.total == 2
