"""The dashboard's figures, from the analytics services (cached: see :mod:`relove.web.cache`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.analytics import service as analytics
from relove.analytics.activity_series import ActivitySeries, activity_series
from relove.analytics.keys import KeyStats, key_stats
from relove.broadcasts import service as broadcasts
from relove.broadcasts.models import Broadcast, BroadcastStatus

DAYS = 90
#: the figures are recomputed in the background at most this often (a few seconds of scans at
#: a million users and millions of events)
REFRESH_SECONDS = 300.0
LIVE_STATUSES = (BroadcastStatus.running, BroadcastStatus.paused, BroadcastStatus.scheduled)


@dataclass
class Dashboard:
    overview: analytics.Overview
    activity: ActivitySeries
    keys: KeyStats
    new_today: int
    new_7d: int
    generated_at: datetime

    def chart_new(self) -> dict[str, list[object]]:
        return {"x": [d.isoformat() for d, _ in self.overview.new_per_day],
                "y": [n for _, n in self.overview.new_per_day]}


async def compute(sessions: async_sessionmaker[AsyncSession], now: datetime) -> Dashboard:
    async with sessions() as session:
        overview = await analytics.overview(session, days=DAYS, now=now, sources=8)
        keys = await key_stats(session, limit=12)
        activity = await activity_series(session, DAYS, now=now)
    per_day: list[tuple[date, int]] = overview.new_per_day
    return Dashboard(overview=overview, activity=activity, keys=keys,
                     new_today=per_day[-1][1] if per_day else 0,
                     new_7d=sum(n for _, n in per_day[-7:]), generated_at=now)


async def live_broadcasts(
    session: AsyncSession,
) -> tuple[list[broadcasts.BroadcastStats], list[Broadcast]]:
    """Running and paused broadcasts with their progress, and the scheduled ones (not
    cached; a scheduled broadcast's audience is not counted here: that is a filter count)."""
    rows = (await session.execute(
        select(Broadcast).where(Broadcast.status.in_(LIVE_STATUSES))
        .order_by(Broadcast.id.desc()).limit(10)
    )).scalars().all()
    running = [await broadcasts.stats(session, b.id) for b in rows
               if b.status is not BroadcastStatus.scheduled]
    return running, [b for b in rows if b.status is BroadcastStatus.scheduled]
