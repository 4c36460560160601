"""Audience: the filter bar with a live count, the users table (cursor pages, columns from the
marker keys actually present), and bulk actions on the filter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.models import Role
from relove.analytics.keys import KeyStats, key_stats
from relove.bulk.actions import BulkOp, apply_to_filter
from relove.errors import FilterError, InvalidInput
from relove.segments.parser import parse_filter
from relove.segments.service import count_users, find_users, resolve_filter
from relove.web.audit import BULK_APPLIED, SOURCE, USERS_EXPORTED, actor_of, audit
from relove.web.deps import (
    AdminDep,
    DbDep,
    ReadDbDep,
    console_of,
    page,
    require,
    section,
    texts_for,
)
from relove.web.export import users_csv
from relove.web.values import parse_typed

router = section()
PAGE = 50
DEFAULT_COLUMNS = 4
MAX_COLUMNS = 12
#: the live count gives up on PostgreSQL after this long (a filter that must scan)
COUNT_TIMEOUT_MS = 3000

FilterQ = Annotated[str, Query(max_length=4000)]


def _columns(cols: list[str] | None, keys: KeyStats) -> list[str]:
    present = [k.key for k in keys.keys]
    if not cols:
        return present[:DEFAULT_COLUMNS]
    return [c for c in cols if c in present][:MAX_COLUMNS]


async def _keys(request: Request) -> KeyStats:
    console = console_of(request)

    async def compute() -> KeyStats:
        async with console.reader() as session:
            return await key_stats(session)

    stats, _ = await console.cache.get("marker-keys", compute)
    return stats


async def _count(db: AsyncSession, flt: str | None) -> int:
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text(f"SET LOCAL statement_timeout = {COUNT_TIMEOUT_MS}"))
    return await count_users(db, flt)


def _is_timeout(e: FilterError) -> bool:
    return "statement timeout" in str(e) or "canceling statement" in str(e)


@router.get("/audience")
async def show(request: Request, admin: AdminDep, db: ReadDbDep, filter: FilterQ = "",  # noqa: A002
               cols: Annotated[list[str] | None, Query()] = None) -> HTMLResponse:
    keys = await _keys(request)
    columns = _columns(cols, keys)
    flt = filter.strip() or None
    error: FilterError | None = None
    users: list[Any] = []
    try:
        users = list(await find_users(db, flt, limit=PAGE))
    except FilterError as e:
        error = e
    return await page(request, db, admin, "audience.html", filter=filter, flt=flt,
                      columns=columns, keys=keys, users=users, error=error, page_size=PAGE,
                      bulk_ops=[o.value for o in BulkOp], count=None, slow=False)


@router.get("/audience/count")
async def live_count(request: Request, admin: AdminDep, db: ReadDbDep, filter: FilterQ = "",  # noqa: A002
                     active: bool = False) -> HTMLResponse:
    """The live count under a filter field (``active``: only users who have not blocked the
    bot, as broadcasts count)."""
    flt = filter.strip() or None
    try:
        if flt:
            parse_filter(flt)  # errors point into the text as typed
        if active:
            flt = f"is_active and ({flt})" if flt else "is_active"
        count: int | None = await _count(db, flt)
        error: FilterError | None = None
    except FilterError as e:
        count, error = None, e
    slow = error is not None and _is_timeout(error)
    return await page(request, db, admin, "audience.html", block="count", filter=filter.strip(),
                      count=count, error=None if slow else error, slow=slow)


@router.get("/audience/rows")
async def rows(request: Request, admin: AdminDep, db: ReadDbDep, filter: FilterQ = "",  # noqa: A002
               after: int | None = None,
               cols: Annotated[list[str] | None, Query()] = None) -> HTMLResponse:
    keys = await _keys(request)
    columns = _columns(cols, keys)
    users = list(await find_users(db, filter.strip() or None, limit=PAGE, after_id=after))
    return await page(request, db, admin, "audience.html", block="rows", filter=filter,
                      columns=columns, users=users, page_size=PAGE)


@router.post("/audience/bulk")
async def bulk(
    request: Request, admin: AdminDep, db: DbDep,
    filter: Annotated[str, Form(max_length=4000)],  # noqa: A002
    op: Annotated[str, Form()],
    key: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form()] = "string",
    value: Annotated[str, Form(max_length=10_000)] = "",
) -> HTMLResponse:
    console = console_of(request)
    t = texts_for(request)
    try:
        bulk_op = BulkOp(op)
        typed: Any = value
        if bulk_op is BulkOp.set:
            typed = parse_typed(kind, value)
        result = await apply_to_filter(console.sessions, filter.strip() or None, bulk_op,
                                       key.strip(), typed,
                                       max_users=console.settings.console_bulk_max,
                                       source=SOURCE, actor=actor_of(admin.admin_id))
    except (InvalidInput, ValueError) as e:
        return await page(request, db, admin, "audience.html", block="bulk_result",
                          status=422, message=str(e), ok=False)
    async with console.sessions.begin() as session:
        await audit(session, admin.admin_id, BULK_APPLIED, {
            "filter": filter.strip(), "op": bulk_op.value, "key": key.strip() or None,
            "matched": result.matched, "changed": result.changed})
    console.cache.forget("marker-keys")
    message = t("audience.bulk_done", changed=result.changed, matched=result.matched)
    return await page(request, db, admin, "audience.html", block="bulk_result",
                      message=message, ok=True)


@router.get("/audience/export.csv", dependencies=[require(Role.operator)])
async def export(request: Request, admin: AdminDep, filter: FilterQ = "") -> Response:  # noqa: A002
    console = console_of(request)
    flt = filter.strip() or None
    async with console.sessions.begin() as session:
        if flt:
            parse_filter(flt)
            await resolve_filter(session, flt)  # a bad filter fails here, before streaming
        await audit(session, admin.admin_id, USERS_EXPORTED, {"filter": flt or ""})
    name = "relove-users.csv"
    return StreamingResponse(
        users_csv(console.read_engine, flt), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
