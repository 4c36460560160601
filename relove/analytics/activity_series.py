"""DAU / WAU / MAU for every day of a period, from what users did (``USER_ACTIONS`` events:
messages, commands, button presses, link clicks).

One statement, one pass over the events of the period (plus the 29 days before it): the
distinct (user, day) pairs, each pair's previous active day of the same user (``lag``), and
from those the day each user enters a 1-, 7- and 30-day window (counted per day); a user
leaves it ``w`` days after each active day. The running sums of entries minus exits give the
three series without a join of days × users."""

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
    # days since 1970-01-01 as integers (date arithmetic on PostgreSQL: no numeric maths)
    day = ("((at AT TIME ZONE 'UTC')::date - DATE '1970-01-01')" if pg
           else "CAST(strftime('%s', at) AS INTEGER) / 86400")
    names = ", ".join(f"'{n}'" for n in USER_ACTIONS)
    # the day a user enters a w-day window: the active day itself, unless the previous active
    # day is less than w days before (then the user is already counted until p + w)
    enters = {w: f"CASE WHEN p IS NULL OR d - p >= {w} THEN d ELSE p + {w} END" for w in (7, 30)}
    lagged = f"""
        SELECT d, lag(d) OVER (PARTITION BY user_id ORDER BY d) AS p FROM (
            SELECT user_id, {day} AS d FROM events
            WHERE name IN ({names}) AND at >= :since AND at < :until AND user_id IS NOT NULL
            GROUP BY 1, 2
        ) AS pairs"""
    if pg:  # one pass, three hash aggregates
        return f"""
        SELECT CASE WHEN GROUPING(d) = 0 THEN 1 WHEN GROUPING(s7) = 0 THEN 7 ELSE 30 END,
               COALESCE(d, s7, s30), count(*)
        FROM (SELECT d, {enters[7]} AS s7, {enters[30]} AS s30 FROM ({lagged}) AS l) AS x
        GROUP BY GROUPING SETS ((d), (s7), (s30))"""
    return f"""
    WITH l AS ({lagged})
    SELECT 1, d, count(*) FROM l GROUP BY d
    UNION ALL SELECT 7, {enters[7]}, count(*) FROM l GROUP BY 2
    UNION ALL SELECT 30, {enters[30]}, count(*) FROM l GROUP BY 2"""


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
    if pg:  # one sort of a few million (user, day) pairs: keep it in memory
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
    rows = (await session.execute(stmt, {"since": since, "until": until})).all()
    epoch = date(1970, 1, 1)
    # +n the day users enter a window; the same users leave it w days after their active day,
    # and the active days per day are the w=1 entries
    deltas: dict[int, dict[int, int]] = {w: {} for w in WINDOWS}
    active = {int(day): int(n) for w, day, n in rows if int(w) == 1}
    for w, day, n in rows:
        deltas[int(w)][int(day)] = deltas[int(w)].get(int(day), 0) + int(n)
    for w in WINDOWS:
        for day, n in active.items():
            deltas[w][day + w] = deltas[w].get(day + w, 0) - n
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
