"""DAU/WAU/MAU series from events equal a brute-force count (both DBs)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.analytics.activity_series import activity_series
from relove.events import NewEvent, record_many

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


async def test_series_equals_brute_force(session_factory: async_sessionmaker[AsyncSession]) -> None:
    rng = random.Random(3)
    active: dict[int, set[date]] = {}
    events = []
    for user in range(1, 40):
        for _ in range(rng.randint(0, 12)):
            at = NOW - timedelta(days=rng.randint(0, 70), seconds=rng.randint(0, 50_000))
            name = rng.choice(["message.received", "command.used", "marker.changed"])
            events.append(NewEvent(user, name, {}, at=at))
            if name != "marker.changed":  # not something the user did
                active.setdefault(user, set()).add(at.date())
    async with session_factory.begin() as s:
        await record_many(s, events, source="bot")
    async with session_factory() as s:
        got = await activity_series(s, days=40, now=NOW)
    assert len(got.days) == 40 and got.days[-1] == NOW.date()
    for i, day in enumerate(got.days):
        def within(w: int, day: date = day) -> int:
            return sum(1 for ds in active.values()
                       if any(day - timedelta(days=w - 1) <= d <= day for d in ds))
        assert (got.dau[i], got.wau[i], got.mau[i]) == (within(1), within(7), within(30)), day
