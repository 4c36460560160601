"""Analytics computed in SQL, never by loading users into Python.

* :func:`overview` — total, active/inactive, new users per day, by gender, by source, activity;
* :func:`breakdown` — users by any column or marker/context path, with counts and shares, under
  an optional filter; a list-valued marker (interests) counts each distinct element once per user;
* :func:`activity` — DAU / WAU / MAU from ``last_seen_at``.

Each breakdown is ONE statement: users are grouped by the raw value first (one scan), only the
distinct values are expanded into list elements, and window functions give the totals. The
grouping is a plain subquery read once (a CTE read twice would be materialised), and a top-level
key is reached with ``->`` rather than ``#>`` (no path array to unpack per row); both measured on
1M users (bench/segments.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    String,
    Text,
    case,
    cast,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import User
from relove.db.types import utcnow
from relove.errors import InvalidInput
from relove.segments.compiler import pg_extract
from relove.segments.jsonform import field_from_text
from relove.segments.service import FilterInput, plan_with_values, resolve_filter
from relove.segments.tree import Field

MAX_TOP = 1000
MAX_DAYS = 366


@dataclass
class BreakdownRow:
    value: Any
    count: int
    share: float


@dataclass
class Breakdown:
    field: str
    total: int  # users matching the filter
    rows: list[BreakdownRow]
    not_set: int  # users without a value (missing key, null, NULL column)
    distinct: int  # distinct values (elements for lists), not counting "not set"
    other: int  # occurrences of values beyond the top N

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Activity:
    total: int
    dau: int
    wau: int
    mau: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Overview:
    total: int
    active: int
    inactive: int
    days: int
    new_per_day: list[tuple[date, int]]
    by_gender: dict[str, int]
    by_source: Breakdown
    activity: Activity
    generated_at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "active": self.active,
            "inactive": self.inactive,
            "days": self.days,
            "new_per_day": [{"date": d.isoformat(), "count": n} for d, n in self.new_per_day],
            "by_gender": self.by_gender,
            "by_source": self.by_source.to_dict(),
            "activity": self.activity.to_dict(),
            "generated_at": self.generated_at.isoformat(),
        }


def _pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _where(session: AsyncSession, flt: FilterInput | None) -> ColumnElement[bool]:
    """The filter (``true`` without one); statements are planned with their values."""
    where = true() if flt is None else await resolve_filter(session, flt)
    await plan_with_values(session)
    return where


def _day(pg: bool, col: Any) -> Any:
    if pg:
        return cast(func.timezone("UTC", col), Date)
    return func.substr(col, 1, 10)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# -- activity ----------------------------------------------------------------------------------
async def activity(
    session: AsyncSession, flt: FilterInput | None = None, *, now: datetime | None = None
) -> Activity:
    """Users seen in the last day, 7 days and 30 days."""
    now = now or utcnow()
    seen = User.last_seen_at
    stmt = select(
        func.count(),
        func.count().filter(seen >= now - timedelta(days=1)),
        func.count().filter(seen >= now - timedelta(days=7)),
        func.count().filter(seen >= now - timedelta(days=30)),
    ).where(await _where(session, flt))
    total, dau, wau, mau = (await session.execute(stmt)).one()
    return Activity(int(total), int(dau), int(wau), int(mau))


# -- breakdown ---------------------------------------------------------------------------------
def _kind_sqlite(t: Any) -> Any:
    return case(
        (t.in_(("integer", "real")), "number"),
        (t.in_(("true", "false")), "boolean"),
        (t == "text", "string"),
        else_=func.coalesce(t, "null"),
    )


def _decode_sqlite(kind: str, value: Any) -> Any:
    if kind == "null" or value is None and kind != "string":
        return None
    if kind == "boolean":
        return bool(value)
    if kind in ("array", "object"):
        return json.loads(value)
    return value


def _groups(pg: bool, f: Field, where: ColumnElement[bool]) -> Any:
    """(kind, value, n) per distinct raw value of the field, as a subquery."""
    if f.doc is None:
        col: Any = getattr(User, f.path[0])
        if f.kind == "datetime":
            key: Any = _day(pg, col)
        elif f.kind == "gender":
            key = cast(col, String)
        else:
            key = col
        return (
            select(key.label("v"), func.count().label("n"))
            .where(where)
            .group_by(key)
            .subquery("g")
        )
    doc: Any = getattr(User, f.doc)
    if pg:
        raw = pg_extract(doc, f.path)
        return (
            select(raw.label("v"), func.count().label("n")).where(where).group_by(raw).subquery("g")
        )
    path = literal("$" + "".join(f'."{k}"' for k in f.path), Text())
    kind = _kind_sqlite(func.json_type(doc, path))
    value = func.json_extract(doc, path)
    return (
        select(kind.label("k"), value.label("v"), func.count().label("n"))
        .where(where)
        .group_by(kind, value)
        .subquery("g")
    )


def _elements(pg: bool, f: Field, g: Any) -> tuple[Any, list[Any]]:
    """Per distinct (group, element): the element key columns; lists expand to elements.
    ``users`` (the same on every row) is the number of users matching the filter."""
    gid = func.row_number().over().label("gid")
    users = func.sum(g.c.n).over().label("users")
    if f.doc is None:
        return select(g.c.v.label("v"), g.c.n.label("n"), users).subquery("e"), ["v"]
    if pg:
        numbered = select(g.c.v, g.c.n, gid, users).subquery("gn")
        arr = case(
            (func.jsonb_typeof(numbered.c.v) == "array", numbered.c.v),
            else_=func.jsonb_build_array(numbered.c.v),
        )
        each = func.jsonb_array_elements(arr).table_valued("value").lateral("x")
        e = (
            select(numbered.c.gid, numbered.c.n, numbered.c.users, each.c.value.label("v"))
            .select_from(numbered)
            .join(each, true())
            .distinct()
            .subquery("e")
        )
        return e, ["v"]
    numbered = select(g.c.k, g.c.v, g.c.n, gid, users).subquery("gn")
    is_array = numbered.c.k == "array"
    each = func.json_each(case((is_array, numbered.c.v), else_="[0]")).table_valued(
        "value", "type"
    )
    e = (
        select(
            numbered.c.gid,
            numbered.c.n,
            numbered.c.users,
            case((is_array, _kind_sqlite(each.c.type)), else_=numbered.c.k).label("k"),
            case((is_array, each.c.value), else_=numbered.c.v).label("v"),
        )
        .select_from(numbered)
        .join(each, true())
        .distinct()
        .subquery("e")
    )
    return e, ["k", "v"]


async def breakdown(
    session: AsyncSession,
    field_name: str | Field,
    flt: FilterInput | None = None,
    *,
    top: int = 20,
) -> Breakdown:
    """Users by the values of a column or document path (``city``, ``markers.interests``,
    ``gender``, ``created_at`` by day), most frequent first."""
    if not 1 <= top <= MAX_TOP:
        raise InvalidInput(f"top must be between 1 and {MAX_TOP}")
    f = field_name if isinstance(field_name, Field) else field_from_text(field_name)
    pg = _pg(session)
    g = _groups(pg, f, await _where(session, flt))
    e, keys = _elements(pg, f, g)
    key_cols = [e.c[k] for k in keys]
    if f.doc and pg:
        not_set = func.coalesce(func.jsonb_typeof(e.c.v), "null") == "null"
    elif f.doc:
        not_set = e.c.k == "null"
    else:
        not_set = e.c.v.is_(None)
    unset = case((not_set, 1), else_=0)
    cnt = func.sum(e.c.n)
    stmt = (
        select(
            *key_cols,
            cnt.label("cnt"),
            unset.label("unset"),
            func.count().over().label("groups"),
            func.sum(cnt).over().label("occurrences"),
            func.max(e.c.users).label("users"),
        )
        .group_by(*key_cols)
        .order_by(unset.desc(), cnt.desc(), *key_cols)
        .limit(top + 1)
    )
    rows = (await session.execute(stmt)).all()
    if rows:
        total, groups, occurrences = int(rows[0].users), int(rows[0].groups), int(
            rows[0].occurrences
        )
    else:
        total_sql = select(func.coalesce(func.sum(g.c.n), 0))
        total, groups, occurrences = int((await session.execute(total_sql)).scalar_one()), 0, 0
    out: list[BreakdownRow] = []
    unset_count = 0
    for row in rows:
        n = int(row.cnt)
        if row.unset:
            unset_count = n
            continue
        if len(out) >= top:
            break
        value = row.v if (pg or f.doc is None) else _decode_sqlite(row.k, row.v)
        if f.kind == "datetime" and value is not None:
            value = _as_date(value).isoformat()
        elif f.kind == "boolean" and value is not None:
            value = bool(value)
        out.append(BreakdownRow(value, n, round(n / total, 6) if total else 0.0))
    has_unset = bool(rows) and bool(rows[0].unset)
    return Breakdown(
        field=f.to_text(),
        total=total,
        rows=out,
        not_set=unset_count,
        distinct=groups - int(has_unset),
        other=occurrences - unset_count - sum(r.count for r in out),
    )


# -- overview ----------------------------------------------------------------------------------
async def new_per_day(
    session: AsyncSession,
    days: int = 14,
    flt: FilterInput | None = None,
    *,
    now: datetime | None = None,
) -> list[tuple[date, int]]:
    """New users per UTC day over the last ``days`` days (today included), zeros filled in."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}")
    now = now or utcnow()
    first = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    day = _day(_pg(session), User.created_at)
    stmt = (
        select(day, func.count())
        .where(User.created_at >= start, await _where(session, flt))
        .group_by(day)
    )
    counts = {_as_date(d): int(n) for d, n in (await session.execute(stmt)).all()}
    return [(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0))
            for i in range(days)]  # fmt: skip


async def overview(
    session: AsyncSession,
    *,
    days: int = 14,
    flt: FilterInput | None = None,
    now: datetime | None = None,
    sources: int = 10,
) -> Overview:
    now = now or utcnow()
    where = await _where(session, flt)
    total, active = (
        await session.execute(
            select(func.count(), func.count().filter(User.is_active)).where(where)
        )
    ).one()
    genders = await breakdown(session, "gender", flt, top=10)
    by_gender = {str(r.value): r.count for r in genders.rows}
    return Overview(
        total=int(total),
        active=int(active),
        inactive=int(total) - int(active),
        days=days,
        new_per_day=await new_per_day(session, days, flt, now=now),
        by_gender=by_gender,
        by_source=await breakdown(session, "markers.source", flt, top=sources),
        activity=await activity(session, flt, now=now),
        generated_at=now,
    )
