"""Analytics over the history: events by day/week, ordered funnels, cohort retention.

All of it runs in SQL (never by loading events into Python), on both databases:

* :func:`event_counts` — events and distinct users per name and day/week;
* :func:`funnel` — users who did step 1 in the period, then each next step after the previous
  one, all within ``within`` of their step 1 (the first step-1 event of each user counts;
  each next step is the first one after the previous step, in ``(at, id)`` order);
* :func:`retention` — users grouped by the period they were first seen (``created_at``), and
  the share of each cohort active (did one of ``USER_ACTIONS``) in each later period.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import User
from relove.db.types import utcnow
from relove.errors import InvalidInput
from relove.events.catalog import USER_ACTIONS, check_name
from relove.events.models import ActivityWeek, Event
from relove.events.timeline import name_condition
from relove.segments.service import FilterInput, plan_with_values, resolve_filter

E = Event.__table__
U = User.__table__
A = ActivityWeek.__table__

Period = Literal["day", "week", "month"]
MAX_STEPS = 10
MAX_COHORTS = 60
MAX_DAYS = 366
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PERIOD_SECONDS = {"day": 86400, "week": 604800}


def parse_duration(value: str) -> timedelta:
    """``7d`` → 7 days (units s, m, h, d, w)."""
    m = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidInput(f"{value!r} is not a duration like 30m, 12h, 7d or 2w")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def _pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _users_where(session: AsyncSession, flt: FilterInput | None) -> Any:
    if flt is None:
        return None
    where = await resolve_filter(session, flt)
    await plan_with_values(session)
    return where


async def _large_query(session: AsyncSession) -> None:
    """PostgreSQL, for the rest of the transaction: plans for the values at hand (a generic
    plan ignores the window and once ran a funnel for 37 s instead of 5), sorts and hash
    aggregates of up to a million users in memory (4 MB spilled a retention's aggregate to
    disk for minutes), and no JIT compilation (≈ 1.8 s of a 6.7 s retention)."""
    await plan_with_values(session)
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    await session.execute(text("SET LOCAL jit = off"))


def _in_filter(where: Any) -> Any:
    return true() if where is None else E.c.user_id.in_(select(U.c.id).where(where))


# -- events by day / week ----------------------------------------------------------------------
@dataclass
class EventCount:
    period: date
    name: str
    events: int
    users: int

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period.isoformat(), "name": self.name, "events": self.events,
                "users": self.users}  # fmt: skip


def _period_start(pg: bool, by: str, col: Any) -> Any:
    if pg:
        return func.date_trunc(by, func.timezone("UTC", col))
    day = func.substr(col, 1, 10)
    return day if by == "day" else func.date(day, "weekday 0", "-6 days")


async def event_counts(
    session: AsyncSession,
    *,
    names: str | list[str] | None = None,
    by: Literal["day", "week"] = "day",
    days: int = 30,
    flt: FilterInput | None = None,
    now: datetime | None = None,
) -> list[EventCount]:
    """Events and distinct users per name and UTC day (or week, from Monday) over the last
    ``days`` days (today included), oldest period first, most frequent name first."""
    if by not in ("day", "week"):
        raise InvalidInput("by must be day or week")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}")
    now = now or utcnow()
    first = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    pg = _pg(session)
    period = _period_start(pg, by, E.c.at).label("period")
    where = [E.c.at >= since, E.c.at <= now, _in_filter(await _users_where(session, flt))]
    if names:
        where.append(name_condition(names))
    stmt = (
        select(period, E.c.name, func.count().label("n"),
               func.count(func.distinct(E.c.user_id)).label("u"))
        .where(*where)
        .group_by(period, E.c.name)
        .order_by(period, func.count().desc(), E.c.name)
    )  # fmt: skip
    rows = (await session.execute(stmt)).all()
    return [EventCount(_as_date(r.period), r.name, int(r.n), int(r.u)) for r in rows]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# -- funnels -----------------------------------------------------------------------------------
@dataclass
class FunnelStep:
    name: str
    users: int
    conversion: float  # share of step 1's users
    from_previous: float  # share of the previous step's users


@dataclass
class Funnel:
    steps: list[FunnelStep]
    within: timedelta
    since: datetime
    until: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [asdict(s) for s in self.steps],
                "within_seconds": int(self.within.total_seconds()),
                "since": self.since.isoformat(), "until": self.until.isoformat()}  # fmt: skip


def _first_per_user(pg: bool, rows: Any, extra: list[Any]) -> Any:
    """Of ``rows`` (a select with user_id, at, id and ``extra`` columns), each user's first row
    in (at, id) order."""
    sub = rows.subquery()
    if pg:
        cols = [sub.c.user_id, sub.c.at, sub.c.id, *[sub.c[c.name] for c in extra]]
        return (
            select(*cols)
            .ext(distinct_on(sub.c.user_id))
            .order_by(sub.c.user_id, sub.c.at, sub.c.id)
        )
    rank = func.row_number().over(partition_by=sub.c.user_id, order_by=(sub.c.at, sub.c.id))
    ranked = select(sub, rank.label("rn")).subquery()
    return select(ranked.c.user_id, ranked.c.at, ranked.c.id,
                  *[ranked.c[c.name] for c in extra]).where(ranked.c.rn == 1)  # fmt: skip


def _deadline(pg: bool, t1: Any, within: timedelta) -> Any:
    seconds = int(within.total_seconds())
    if pg:
        return t1.op("+")(literal_column(f"interval '{seconds} seconds'"))
    # Text arithmetic keeps the microseconds exact: shift the whole seconds, keep the fraction.
    return func.strftime("%Y-%m-%d %H:%M:%S", t1, f"+{seconds} seconds").op("||")(
        func.substr(t1, 20)
    )


async def funnel(
    session: AsyncSession,
    steps: list[str],
    *,
    within: timedelta,
    since: datetime | None = None,
    until: datetime | None = None,
    flt: FilterInput | None = None,
) -> Funnel:
    """An ordered funnel: how many users did each step, in order, within ``within`` of their
    first step-1 event in ``[since, until)`` (default: the last 30 days)."""
    if not 2 <= len(steps) <= MAX_STEPS:
        raise InvalidInput(f"a funnel needs 2 to {MAX_STEPS} steps")
    for step in steps:
        check_name(step)
    if within <= timedelta(0):
        raise InvalidInput("within must be positive")
    until = until or utcnow()
    since = since or until - timedelta(days=30)
    pg = _pg(session)
    user_where = await _users_where(session, flt)
    if pg:
        await _large_query(session)
    first = select(E.c.user_id, E.c.at, E.c.id, E.c.at.label("t1")).where(
        E.c.name == steps[0], E.c.at >= since, E.c.at < until, _in_filter(user_where)
    )
    t1 = first.selected_columns.t1
    previous = _first_per_user(pg, first, [t1]).cte("step1")
    ctes = [previous]
    for i, name in enumerate(steps[1:], start=2):
        p = previous
        after = or_(E.c.at > p.c.at, and_(E.c.at == p.c.at, E.c.id > p.c.id))
        rows = (
            select(E.c.user_id, E.c.at, E.c.id, p.c.t1.label("t1"))
            .select_from(p.join(E, E.c.user_id == p.c.user_id))
            .where(E.c.name == name, E.c.at >= p.c.at, after,
                   E.c.at <= _deadline(pg, p.c.t1, within),
                   # implied by the two above; they let the planner skip old partitions
                   # and read the (name, at) index over the window only
                   E.c.at >= since, E.c.at < until + within)  # fmt: skip
        )
        previous = _first_per_user(pg, rows, [rows.selected_columns.t1]).cte(f"step{i}")
        ctes.append(previous)
    counts = select(*[select(func.count()).select_from(c).scalar_subquery() for c in ctes])
    row = (await session.execute(counts)).one()
    out: list[FunnelStep] = []
    for i, (name, n) in enumerate(zip(steps, row, strict=True)):
        top = int(row[0])
        prev = int(row[i - 1]) if i else top
        out.append(FunnelStep(name, int(n), round(int(n) / top, 6) if top else 0.0,
                              round(int(n) / prev, 6) if prev else 0.0))  # fmt: skip
    return Funnel(out, within, since, until)


# -- retention ---------------------------------------------------------------------------------
@dataclass
class Cohort:
    start: date
    users: int
    active: list[int]  # users active in period 0, 1, … (only periods that have begun)

    @property
    def shares(self) -> list[float]:
        return [round(a / self.users, 6) if self.users else 0.0 for a in self.active]


@dataclass
class Retention:
    period: str
    cohorts: list[Cohort]
    events: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "events": self.events,
                "cohorts": [{"start": c.start.isoformat(), "users": c.users, "active": c.active,
                             "shares": c.shares} for c in self.cohorts]}  # fmt: skip


def period_start(now: datetime, period: Period, back: int) -> datetime:
    """The start (UTC) of the period ``back`` periods before ``now``'s."""
    d = now.astimezone(UTC).date()
    if period == "day":
        d -= timedelta(days=back)
    elif period == "week":
        d -= timedelta(days=d.weekday() + 7 * back)
    else:
        index = d.year * 12 + d.month - 1 - back
        d = date(index // 12, index % 12 + 1, 1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _period_index(period: Period, col: Any, start: datetime) -> Any:
    """SQLite: the index of ``col``'s period, counted from the one starting at ``start``."""
    if period == "month":
        base = start.year * 12 + start.month
        return (cast(func.strftime("%Y", col), Integer) * 12
                + cast(func.strftime("%m", col), Integer) - base)  # fmt: skip
    seconds = _PERIOD_SECONDS[period]
    epoch = int(start.timestamp())
    # Integer division (both sides are integers, and the difference is never negative).
    return (cast(func.strftime("%s", col), Integer) - epoch).self_group().op("/")(seconds)


async def retention(
    session: AsyncSession,
    *,
    period: Period = "week",
    cohorts: int = 8,
    events: list[str] | None = None,
    flt: FilterInput | None = None,
    now: datetime | None = None,
) -> Retention:
    """The last ``cohorts`` cohorts (users first seen in each period, oldest first) and how many
    of each were active in each period since, up to now."""
    if period not in ("day", "week", "month"):
        raise InvalidInput("period must be day, week or month")
    if not 1 <= cohorts <= MAX_COHORTS:
        raise InvalidInput(f"cohorts must be between 1 and {MAX_COHORTS}")
    names = list(events or USER_ACTIONS)
    for name in names:
        check_name(name)
    now = now or utcnow()
    start = period_start(now, period, cohorts - 1)
    pg = _pg(session)
    user_where = await _users_where(session, flt)
    in_filter = true() if user_where is None else user_where
    in_window = [E.c.at >= start, E.c.at <= now, E.c.name.in_(names), E.c.user_id.is_not(None)]
    counted = None
    if set(names) == set(USER_ACTIONS):
        counted = await _retention_from_activity(session, period, cohorts, now, in_filter)
    if counted is not None:
        sizes, active = counted
    elif pg:
        sizes, active = await _retention_pg(session, period, cohorts, now, in_filter, in_window)
    else:
        sizes, active = await _retention_sqlite(session, period, start, now, in_filter,
                                                in_window)  # fmt: skip
    out = []
    for i in range(cohorts):
        begun = cohorts - i  # periods of this cohort that have started by now
        out.append(Cohort(
            start=period_start(now, period, cohorts - 1 - i).date(),
            users=sizes.get(i, 0),
            active=[active.get((i, kk), 0) for kk in range(begun)],
        ))  # fmt: skip
    return Retention(period, out, names)


def _period_bounds(now: datetime, period: Period, cohorts: int) -> list[datetime]:
    """The starts of periods 1 … cohorts-1 (period 0 starts at ``period_start(now, period,
    cohorts - 1)``), ascending: ``width_bucket(at, bounds)`` is then ``at``'s period index."""
    return [period_start(now, period, back) for back in range(cohorts - 2, -1, -1)]


async def _retention_pg(
    session: AsyncSession, period: Period, cohorts: int, now: datetime, in_filter: Any,
    in_window: list[Any],
) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Cohort sizes and active users per (cohort, periods since) in two statements.

    The window's events (millions at scale) are reduced to ONE row per user, a bit mask of the
    periods the user was active in (``bit_or(1 << period)``; at most 60 periods fit a bigint),
    then joined to the cohort users once and counted per cohort with one ``FILTER`` per period.
    Period indexes come from ``width_bucket`` over the period starts: exact timestamp
    comparisons, no per-row numeric arithmetic. A DISTINCT over (user, period) pairs instead
    spilled its hash aggregate to disk and ran for minutes at 10M events."""
    bounds = _period_bounds(now, period, cohorts)
    arr = literal(bounds, ARRAY(DateTime(timezone=True)))

    def index(col: Any) -> Any:
        return func.width_bucket(col, arr) if bounds else literal(0, Integer())

    ci = index(U.c.created_at).label("ci")
    c = select(U.c.id, ci).where(
        U.c.created_at >= period_start(now, period, cohorts - 1), U.c.created_at <= now, in_filter
    ).cte("c")
    one = cast(literal(1), BigInteger())  # shifts up to 59: a bigint, never an int4
    m = (
        select(E.c.user_id, func.bit_or(one.op("<<")(index(E.c.at))).label("mask"))
        .where(*in_window)
        .group_by(E.c.user_id)
        .cte("m")
    )
    bit = [(m.c.mask.op(">>")(c.c.ci + k)).op("&")(one) == one for k in range(cohorts)]
    active_stmt = (
        select(c.c.ci, *[func.count().filter(and_(c.c.ci < cohorts - k, bit[k]))
                         for k in range(cohorts)])
        .select_from(c.join(m, m.c.user_id == c.c.id))
        .group_by(c.c.ci)
    )  # fmt: skip
    sizes_stmt = select(c.c.ci, func.count()).group_by(c.c.ci)
    await _large_query(session)
    sizes = {int(i): int(n) for i, n in (await session.execute(sizes_stmt)).all()}
    active: dict[tuple[int, int], int] = {}
    for row in (await session.execute(active_stmt)).all():
        for k, n in enumerate(row[1:]):
            if n:
                active[(int(row[0]), k)] = int(n)
    return sizes, active


async def _retention_from_activity(
    session: AsyncSession, period: Period, cohorts: int, now: datetime, in_filter: Any
) -> tuple[dict[int, int], dict[tuple[int, int], int]] | None:
    """Cohort sizes and active users per (cohort, periods since) from ``activity_weeks`` (the
    default activity, ``USER_ACTIONS``), or None when it cannot answer exactly: when user
    actions are recorded later on ``now``'s day than ``now`` (a ``now`` in the past, or events
    dated ahead), since the rollup knows days, not instants.

    Each (user, week) row is unique, so a weekly retention counts rows per (cohort, week)
    directly: no reduction to one row per user, which was most of the cost on the raw events.
    Days are the rows' bits (one row per bit set); months, days made distinct per user."""
    today = now.astimezone(UTC).date()
    tomorrow = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    later_today = select(E.c.id).where(
        E.c.name.in_(USER_ACTIONS), E.c.at > now, E.c.at < tomorrow, E.c.user_id.is_not(None)
    ).limit(1)
    if (await session.execute(later_today)).first() is not None:
        return None
    pg = _pg(session)
    start = period_start(now, period, cohorts - 1)
    first, monday = start.date(), today - timedelta(days=today.weekday())
    # the days of now's week up to today (later ones are events dated ahead)
    days = case((A.c.week == monday, A.c.days.op("&")((1 << (today.weekday() + 1)) - 1)),
                else_=A.c.days)  # fmt: skip
    rows = [A.c.week >= first - timedelta(days=first.weekday()), A.c.week <= monday, days != 0]
    bounds = _period_bounds(now, period, cohorts)

    def index(col: Any, timestamps: bool = False) -> Any:
        """The period index of ``col`` (a day; with ``timestamps``, a timestamp)."""
        if not pg:
            return _period_index(period, col, start)
        if not bounds:
            return literal(0, Integer())
        if timestamps:
            return func.width_bucket(col, literal(bounds, ARRAY(DateTime(timezone=True))))
        return func.width_bucket(col, literal([b.date() for b in bounds], ARRAY(Date())))

    ci = index(U.c.created_at, timestamps=True).label("ci")
    c = select(U.c.id, ci).where(U.c.created_at >= start, U.c.created_at <= now,
                                 in_filter).cte("c")  # fmt: skip
    if period == "week":
        pi = index(A.c.week)
        joined = c.join(A, A.c.user_id == c.c.id)
    else:
        # the seven day bits, as constants (typed: a bound value in a UNION has no type)
        bits = union_all(*[select(literal_column(str(i)).label("b"),
                                  literal_column(str(1 << i)).label("bit"))
                           for i in range(7)]).subquery("bits")  # fmt: skip
        day = (A.c.week + bits.c.b if pg
               else func.date(A.c.week, literal("+").op("||")(bits.c.b).op("||")(" days")))
        first_day, last_day = (first, today) if pg else (first.isoformat(), today.isoformat())
        pi = index(day)
        joined = c.join(A, A.c.user_id == c.c.id).join(bits, days.op("&")(bits.c.bit) != 0)
        rows += [day >= first_day, day <= last_day]
    pairs = select(c.c.ci, pi.label("pi"), c.c.id).select_from(joined).where(*rows, pi >= c.c.ci)
    if period == "month":  # several days of a user in one month
        pairs = pairs.distinct()
    p = pairs.subquery("p")
    k = (p.c.pi - p.c.ci).label("k")
    active_stmt = select(p.c.ci, k, func.count()).group_by(p.c.ci, k)
    sizes_stmt = select(c.c.ci, func.count()).group_by(c.c.ci)
    if pg:
        await _large_query(session)
    sizes = {int(i): int(n) for i, n in (await session.execute(sizes_stmt)).all()}
    active = {(int(i), int(kk)): int(n) for i, kk, n in (await session.execute(active_stmt)).all()}
    return sizes, active


async def _retention_sqlite(
    session: AsyncSession, period: Period, start: datetime, now: datetime, in_filter: Any,
    in_window: list[Any],
) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    ci = _period_index(period, U.c.created_at, start).label("ci")
    c = select(U.c.id, ci).where(U.c.created_at >= start, U.c.created_at <= now, in_filter).cte("c")
    pi = _period_index(period, E.c.at, start).label("pi")
    a = select(E.c.user_id, pi).where(*in_window).distinct().cte("a")
    k = (a.c.pi - c.c.ci).label("k")
    active_stmt = (
        select(c.c.ci, k, func.count())
        .select_from(c.join(a, and_(a.c.user_id == c.c.id, a.c.pi >= c.c.ci)))
        .group_by(c.c.ci, k)
    )
    sizes_stmt = select(c.c.ci, func.count()).group_by(c.c.ci)
    sizes = {int(i): int(n) for i, n in (await session.execute(sizes_stmt)).all()}
    active = {(int(i), int(kk)): int(n) for i, kk, n in (await session.execute(active_stmt)).all()}
    return sizes, active


__all__ = [
    "Cohort",
    "EventCount",
    "Funnel",
    "FunnelStep",
    "Retention",
    "event_counts",
    "funnel",
    "parse_duration",
    "retention",
]
