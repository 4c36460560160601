"""``activity_weeks`` stays exactly what the events say (the days of each user's week with a
user action), whoever writes or deletes events — and retention read from it equals retention
over the raw events — on every backend."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text

from relove.analytics.events import retention
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.events import USER_ACTIONS, Event, NewEvent, record_many
from relove.events.activity import backfill, prune_activity
from relove.events.models import ActivityWeek
from relove.users.lifecycle import delete_user

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # a Wednesday
NAMES = [*USER_ACTIONS, "order.paid"]  # the last is no user action
EXAMPLES = int(os.environ.get("RELOVE_PROPERTY_EXAMPLES", "80")) // 2

PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Hours on a grid from 70 days back to 2 days ahead (events dated ahead of NOW happen: an
# import, a clock), so days, weeks, months and NOW's own day all have edges.
moments = st.integers(-48, 70 * 24).map(lambda h: NOW - timedelta(hours=h))
histories = st.lists(
    st.tuples(st.integers(1, 6), st.sampled_from(NAMES), moments,
              st.one_of(st.none(), st.sampled_from(["k1", "k2"]))),
    max_size=40,
)  # fmt: skip
creations = st.lists(moments, min_size=6, max_size=6)


def _expected(events) -> dict[tuple[int, date], int]:
    """(user, Monday) → the mask of the week's days with a user action, from the events."""
    out: dict[tuple[int, date], int] = defaultdict(int)
    for user, name, at in events:
        if user is not None and name in USER_ACTIONS:
            day = at.astimezone(UTC).date()
            out[(user, day - timedelta(days=day.weekday()))] |= 1 << day.weekday()
    return dict(out)


async def _rollup(engine) -> dict[tuple[int, date], int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(ActivityWeek.user_id, ActivityWeek.week,
                                         ActivityWeek.days))  # fmt: skip
        return {(u, w if isinstance(w, date) else date.fromisoformat(w)): d for u, w, d in rows}


async def _events(engine) -> list[tuple[int | None, str, datetime]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(Event.user_id, Event.name, Event.at))
        return [tuple(r) for r in rows]


async def _store(engine, history, created) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(Event))
        await conn.execute(delete(User))
        await conn.execute(User.__table__.insert(), [
            {"id": i + 1, "created_at": at, "updated_at": at, "markers": {}, "context": {}}
            for i, at in enumerate(created)])  # fmt: skip
    sessions = create_session_factory(engine)
    half = len(history) // 2
    # two transactions: the second's duplicates (same dedupe key and day) are not recorded
    for part in (history[:half], history[half:]):
        async with sessions.begin() as s:
            await record_many(s, [NewEvent(u, n, {}, at=at, dedupe_key=k)
                                  for u, n, at, k in part], source="api")  # fmt: skip


async def _same_retention(engine, now: datetime) -> None:
    """Retention read from the rollup (the default activity) equals the raw events' (the same
    names plus one nobody did, which the rollup cannot answer)."""
    async with create_session_factory(engine)() as s:
        for period, cohorts in (("day", 10), ("week", 8), ("month", 3)):
            fast = await retention(s, period=period, cohorts=cohorts, now=now)
            raw = await retention(s, period=period, cohorts=cohorts, now=now,
                                  events=[*USER_ACTIONS, "never.happened"])  # fmt: skip
            assert [(c.start, c.users, c.active) for c in fast.cohorts] == [
                (c.start, c.users, c.active) for c in raw.cohorts], period


@PROPERTY
@given(history=histories, created=creations, gone=st.sets(st.integers(0, 39), max_size=20),
       forget=st.integers(1, 6), back=st.integers(0, 30))  # fmt: skip
async def test_rollup_follows_inserts_deletes_and_forget(
    engine, history, created, gone, forget, back
):
    await _store(engine, history, created)
    assert await _rollup(engine) == _expected(await _events(engine))
    # now, and a moment in the past (events after it on its own day: raw events answer)
    await _same_retention(engine, NOW)
    await _same_retention(engine, NOW - timedelta(days=back, hours=back))

    async with engine.begin() as conn:  # any events deleted (pruning, cleanup …)
        ids = (await conn.execute(select(Event.id).order_by(Event.id))).scalars().all()
        await conn.execute(delete(Event).where(Event.id.in_([ids[i] for i in gone
                                                             if i < len(ids)])))  # fmt: skip
    assert await _rollup(engine) == _expected(await _events(engine))

    async with create_session_factory(engine).begin() as s:  # /forget
        await delete_user(s, forget)
    assert not [k for k in await _rollup(engine) if k[0] == forget]
    assert await _rollup(engine) == _expected(await _events(engine))
    await _same_retention(engine, NOW)


async def test_pruning_clears_the_days_before_the_kept_history(db):
    monday = date(2026, 11, 16)
    at = [datetime(2026, 11, d, 12, tzinfo=UTC) for d in (2, 16, 18, 21)]  # Mon, Mon, Wed, Sat
    async with create_session_factory(db).begin() as s:
        await record_many(s, [NewEvent(7, "message.received", {}, at=t) for t in at],
                          source="bot")  # fmt: skip
    async with db.begin() as conn:
        await conn.execute(delete(Event).where(Event.at < datetime(2026, 11, 18, tzinfo=UTC)))
        await conn.run_sync(lambda c: prune_activity(c, date(2026, 11, 18)))
    assert await _rollup(db) == {(7, monday): 0b0100100}
    assert await _rollup(db) == _expected(await _events(db))


async def test_truncating_events_empties_the_rollup(db):
    async with create_session_factory(db).begin() as s:
        await record_many(s, [NewEvent(1, "command.used", {}, at=NOW)], source="bot")
    assert await _rollup(db) == {(1, date(2026, 11, 23)): 0b100}
    if db.dialect.name == "postgresql":
        async with db.begin() as conn:
            await conn.execute(text("TRUNCATE events"))
        assert await _rollup(db) == {}


async def test_the_backfill_rebuilds_the_rollup_from_the_stored_events(db):
    """What the migration runs on an existing history."""
    history = [(u, n, NOW - timedelta(hours=h * 7), None) for u in (1, 2)
               for h, n in enumerate(NAMES * 5)]  # fmt: skip
    await _store(db, history, [NOW] * 6)
    expected = _expected(await _events(db))
    async with db.begin() as conn:
        await conn.execute(delete(ActivityWeek))
        await conn.run_sync(backfill)
    assert await _rollup(db) == expected and len(expected) > 2
