"""Funnels, retention and event counts equal a brute-force Python computation over
hypothesis-generated histories — on every backend."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from relove.analytics.events import (
    event_counts,
    funnel,
    parse_duration,
    period_start,
    retention,
)
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.errors import InvalidInput
from relove.events import Event, NewEvent, record_many

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # a Wednesday
NAMES = ["a.x", "b.y", "c.z"]
EXAMPLES = int(os.environ.get("RELOVE_PROPERTY_EXAMPLES", "80")) // 2

PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Times on a coarse grid (so ties and exact window boundaries happen often), within 40 days.
moments = st.integers(0, 40 * 24).map(lambda h: NOW - timedelta(hours=h))
histories = st.lists(
    st.tuples(st.integers(1, 6), st.sampled_from(NAMES), moments), max_size=40
)
creations = st.lists(moments, min_size=6, max_size=6)


async def _store(engine, history, created) -> list[tuple[int, int, str, datetime]]:
    async with engine.begin() as conn:
        await conn.execute(delete(Event))
        await conn.execute(delete(User))
        await conn.execute(User.__table__.insert(), [
            {"id": i + 1, "created_at": at, "updated_at": at, "markers": {"vip": i % 2 == 0},
             "context": {}} for i, at in enumerate(created)])  # fmt: skip
    sessions = create_session_factory(engine)
    async with sessions.begin() as s:
        await record_many(s, [NewEvent(u, n, {}, at=at) for u, n, at in history], source="bot")
    async with engine.connect() as conn:
        rows = await conn.execute(select(Event.id, Event.user_id, Event.name, Event.at))
        return [tuple(r) for r in rows]


def _funnel_reference(events, steps, within, since, until, users=None) -> list[int]:
    per_user = defaultdict(list)
    for row_id, user, name, at in events:
        if users is None or user in users:
            per_user[user].append((at, row_id, name))
    counts = [0] * len(steps)
    for evs in per_user.values():
        evs.sort()
        firsts = [e for e in evs if e[2] == steps[0] and since <= e[0] < until]
        if not firsts:
            continue
        cur = firsts[0]
        t1 = cur[0]
        counts[0] += 1
        for k, step in enumerate(steps[1:], start=1):
            nxt = next((e for e in evs if e[2] == step and e[:2] > cur[:2]
                        and e[0] <= t1 + within), None)  # fmt: skip
            if nxt is None:
                break
            counts[k] += 1
            cur = nxt
    return counts


@PROPERTY
@given(
    history=histories,
    created=creations,
    steps=st.lists(st.sampled_from(NAMES), min_size=2, max_size=3),
    within_hours=st.sampled_from([1, 5, 24, 72]),
    since_days=st.sampled_from([3, 10, 30]),
    vip_only=st.booleans(),
)
async def test_funnel_equals_brute_force(
    engine, history, created, steps, within_hours, since_days, vip_only
):
    events = await _store(engine, history, created)
    within = timedelta(hours=within_hours)
    since, until = NOW - timedelta(days=since_days), NOW
    users = {i + 1 for i in range(6) if i % 2 == 0} if vip_only else None
    expected = _funnel_reference(events, steps, within, since, until, users)
    async with create_session_factory(engine)() as s:
        got = await funnel(s, steps, within=within, since=since, until=until,
                           flt="vip" if vip_only else None)  # fmt: skip
    assert [step.users for step in got.steps] == expected
    assert [step.name for step in got.steps] == steps


def _index(period: str, at: datetime, start: datetime) -> int:
    if period == "month":
        return (at.year * 12 + at.month) - (start.year * 12 + start.month)
    seconds = 86400 if period == "day" else 604800
    return int((at - start).total_seconds() // seconds)


@PROPERTY
@given(
    history=histories,
    created=creations,
    period=st.sampled_from(["day", "week", "month"]),
    cohorts=st.integers(1, 6),
    names=st.one_of(st.none(), st.lists(st.sampled_from(NAMES), min_size=1, max_size=2)),
)
async def test_retention_equals_brute_force(engine, history, created, period, cohorts, names):
    events = await _store(engine, history, created)
    wanted = names or ["message.received", "command.used", "button.pressed", "link.clicked"]
    start = period_start(NOW, period, cohorts - 1)
    cohort_of = {i + 1: _index(period, at, start) for i, at in enumerate(created)
                 if start <= at <= NOW}  # fmt: skip
    active: dict[tuple[int, int], set[int]] = defaultdict(set)
    for _, user, name, at in events:
        if user in cohort_of and name in wanted and start <= at <= NOW:
            k = _index(period, at, start) - cohort_of[user]
            if k >= 0:
                active[(cohort_of[user], k)].add(user)
    async with create_session_factory(engine)() as s:
        got = await retention(s, period=period, cohorts=cohorts, events=names, now=NOW)
    assert len(got.cohorts) == cohorts
    for i, c in enumerate(got.cohorts):
        assert c.start == period_start(NOW, period, cohorts - 1 - i).date()
        assert c.users == sum(1 for ci in cohort_of.values() if ci == i)
        assert c.active == [len(active[(i, k)]) for k in range(cohorts - i)]


async def test_retention_of_the_oldest_of_sixty_daily_cohorts(session_factory):
    """Sixty daily cohorts: the oldest cohort's activity today is period 59 (a 64-bit mask on
    PostgreSQL must not overflow or wrap)."""
    start = period_start(NOW, "day", 59)
    async with session_factory.begin() as s:
        await s.execute(User.__table__.insert(), [
            {"id": i, "created_at": at, "updated_at": at, "markers": {}, "context": {}}
            for i, at in ((1, start), (2, NOW))])  # fmt: skip
        await record_many(s, [NewEvent(1, "a.x", {}, at=start),
                              NewEvent(1, "a.x", {}, at=NOW),
                              NewEvent(2, "a.x", {}, at=NOW)], source="bot")  # fmt: skip
    async with session_factory() as s:
        got = await retention(s, period="day", cohorts=60, events=["a.x"], now=NOW)
    oldest, today = got.cohorts[0], got.cohorts[-1]
    assert (oldest.users, oldest.active) == (1, [1] + [0] * 58 + [1])
    assert (today.users, today.active) == (1, [1])
    assert all(c.users == 0 for c in got.cohorts[1:-1])


@PROPERTY
@given(history=histories, by=st.sampled_from(["day", "week"]))
async def test_event_counts_equal_brute_force(engine, history, by):
    events = await _store(engine, history, [NOW] * 6)
    first = (NOW - timedelta(days=13)).date()
    expected: dict[tuple, list] = defaultdict(lambda: [0, set()])
    for _, user, name, at in events:
        if at.date() < first:
            continue
        day = at.date()
        key = day if by == "day" else day - timedelta(days=day.weekday())
        expected[(key, name)][0] += 1
        expected[(key, name)][1].add(user)
    async with create_session_factory(engine)() as s:
        got = await event_counts(s, by=by, days=14, now=NOW)
    assert {(c.period, c.name): (c.events, c.users) for c in got} == {
        k: (n, len(u)) for k, (n, u) in expected.items()}
    assert [c.period for c in got] == sorted(c.period for c in got)


async def test_funnel_example_and_bad_input(session_factory):
    t = NOW - timedelta(days=1)
    async with session_factory.begin() as s:
        await record_many(s, [
            NewEvent(1, "command.used", {}, at=t),
            NewEvent(1, "button.pressed", {}, at=t + timedelta(minutes=1)),
            NewEvent(1, "order.paid", {}, at=t + timedelta(minutes=2)),
            NewEvent(2, "command.used", {}, at=t),
            NewEvent(2, "order.paid", {}, at=t + timedelta(minutes=1)),  # skipped a step
            NewEvent(3, "command.used", {}, at=t),
            NewEvent(3, "button.pressed", {}, at=t + timedelta(days=3)),  # too late
        ], source="bot")  # fmt: skip
    async with session_factory() as s:
        f = await funnel(s, ["command.used", "button.pressed", "order.paid"],
                         within=timedelta(days=1), until=NOW)  # fmt: skip
        assert [(st.users, st.conversion) for st in f.steps] == [
            (3, 1.0), (1, 0.333333), (1, 0.333333)]
        for bad in (["command.used"], ["Bad Name", "a.b"]):
            with pytest.raises(InvalidInput):
                await funnel(s, bad, within=timedelta(days=1))
        with pytest.raises(InvalidInput):
            await retention(s, cohorts=0)
    assert parse_duration("7d") == timedelta(days=7)
    with pytest.raises(InvalidInput):
        parse_duration("7 days")
