"""DAU / WAU / MAU for every day of a period, from what users did (``USER_ACTIONS`` events:
messages, commands, button presses, link clicks).

One statement: the distinct (user, day) pairs of the period (plus the 29 days before it),
each pair's previous active day of the same user (``lag``), and from those the day each user
enters and leaves a 1-, 7- and 30-day window — +1/−1 steps summed per day. The running sums
give the three series without a join of days × users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.types import UTCDateTime, utcnow
from relove.events.catalog import USER_ACTIONS

WINDOWS = (1, 7, 30)


@dataclass
class ActivitySeries:
    days: list[date]
    dau: list[int]
    wau: list[int]
    mau: list[int]

    def chart(self) -> dict[str, object]:
        return {"x": [d.isoformat() for d in self.days],
                "ys": [{"label": "DAU", "values": self.dau}, {"label": "WAU", "values": self.wau},
                       {"label": "MAU", "values": self.mau}]}


def _sql(pg: bool) -> str:
    day = ("CAST(floor(extract(epoch FROM at) / 86400) AS bigint)" if pg
           else "CAST(strftime('%s', at) AS INTEGER) / 86400")
    names = ", ".join(f"'{n}'" for n in USER_ACTIONS)
    steps = " UNION ALL ".join(
        f"SELECT {w} AS w, CASE WHEN p IS NULL OR d - p >= {w} THEN d ELSE p + {w} END AS s, "
        f"d + {w} AS e FROM lagged" for w in WINDOWS)
    return f"""
    WITH pairs AS (
        SELECT DISTINCT user_id, {day} AS d FROM events
        WHERE name IN ({names}) AND at >= :since AND at < :until AND user_id IS NOT NULL
    ), lagged AS (
        SELECT d, lag(d) OVER (PARTITION BY user_id ORDER BY d) AS p FROM pairs
    ), spans AS ({steps})
    SELECT w, day, sum(delta) FROM (
        SELECT w, s AS day, 1 AS delta FROM spans WHERE s < e
        UNION ALL SELECT w, e AS day, -1 AS delta FROM spans WHERE s < e
    ) steps GROUP BY w, day
    """


async def activity_series(session: AsyncSession, days: int = 90,
                          now: datetime | None = None) -> ActivitySeries:
    now = now or utcnow()
    last = now.astimezone(UTC).date()
    first = last - timedelta(days=days - 1)
    since = datetime.combine(first - timedelta(days=max(WINDOWS) - 1), datetime.min.time(), UTC)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    pg = session.get_bind().dialect.name == "postgresql"
    stmt = text(_sql(pg)).bindparams(bindparam("since", type_=UTCDateTime()),
                                     bindparam("until", type_=UTCDateTime()))
    rows = (await session.execute(stmt, {"since": since, "until": until})).all()
    epoch = date(1970, 1, 1)
    deltas: dict[int, dict[int, int]] = {w: {} for w in WINDOWS}
    for w, day, delta in rows:
        deltas[int(w)][int(day)] = deltas[int(w)].get(int(day), 0) + int(delta)
    start = (since.date() - epoch).days
    series: dict[int, list[int]] = {w: [] for w in WINDOWS}
    running = dict.fromkeys(WINDOWS, 0)
    out_days = []
    for n in range(start, (last - epoch).days + 1):
        for w in WINDOWS:
            running[w] += deltas[w].get(n, 0)
        current = epoch + timedelta(days=n)
        if current >= first:
            out_days.append(current)
            for w in WINDOWS:
                series[w].append(running[w])
    return ActivitySeries(out_days, series[1], series[7], series[30])
