"""Saved segments and filtered user queries.

The session is the caller's (one per command, update or request); writers flush, the caller
commits.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import User
from relove.db.sqlite_functions import FUNCTION_FAILED
from relove.db.types import utcnow
from relove.errors import FilterError, InvalidInput, NotFound
from relove.regexp import RegexTooSlow
from relove.segments.compiler import as_tree, compile_filter
from relove.segments.lower import MAX_SEGMENT_DEPTH, lower, segment_names
from relove.segments.models import SEGMENT_NAME_MAX, Segment
from relove.segments.parser import parse_filter
from relove.segments.tree import FilterTree

log = logging.getLogger(__name__)

FilterInput = str | FilterTree | Mapping[str, Any]


def check_segment_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("a segment name must not be empty")
    if len(name) > SEGMENT_NAME_MAX:
        raise InvalidInput(f"a segment name must be at most {SEGMENT_NAME_MAX} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise InvalidInput(f"segment name {name!r} contains a control character")
    return name


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


_CUSTOM_PLANS = "relove.segments.custom_plans"


async def plan_with_values(session: AsyncSession) -> None:
    """On PostgreSQL, plan this transaction's statements with their bound values.

    The driver prepares each statement once per connection, and after five executions
    PostgreSQL may switch to a *generic* plan that ignores the values. For a filter that is
    wrong: ``city = "Урюпинск"`` (500 users) and ``city = "Москва"`` (200,000) share one
    statement but need different plans, and the generic plan of ``score >= 50 and source in
    (…)`` runs without parallel workers (1.15–1.4× slower on 1M users). So filtered
    statements get ``SET LOCAL plan_cache_mode = force_custom_plan``: one round trip (~0.1 ms)
    for the first filtered statement of a transaction (or savepoint); it ends with it.
    """
    if _dialect(session) != "postgresql":
        return
    sync = session.sync_session
    current = sync.get_nested_transaction() or sync.get_transaction()
    if current is not None and session.info.get(_CUSTOM_PLANS) is current:
        return
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    session.info[_CUSTOM_PLANS] = sync.get_nested_transaction() or sync.get_transaction()


async def load_segments(session: AsyncSession, tree: FilterTree) -> dict[str, FilterTree]:
    """The saved segments ``tree`` refers to, directly or through other segments: one query
    per level of references, at most ``MAX_SEGMENT_DEPTH`` of them."""
    found: dict[str, FilterTree] = {}
    pending = segment_names(tree)
    for level in range(MAX_SEGMENT_DEPTH + 1):
        if not pending:
            break
        if level == MAX_SEGMENT_DEPTH:
            raise FilterError(f"saved segments refer to each other more than "
                              f"{MAX_SEGMENT_DEPTH} levels deep")  # fmt: skip
        rows = await session.execute(
            select(Segment.name, Segment.filter).where(Segment.name.in_(sorted(pending)))
        )
        for name, filter_text in rows:
            try:
                found[name] = parse_filter(filter_text)
            except FilterError as e:
                raise FilterError(f"saved segment {name!r} is invalid: {e}") from e
        missing = pending - found.keys()
        if missing:
            raise FilterError(f"unknown segment {sorted(missing)[0]!r}")
        pending = set().union(*(segment_names(found[n]) for n in pending)) - found.keys()
    return found


async def resolve_filter(
    session: AsyncSession, text_or_tree: FilterInput, *, now: datetime | None = None
) -> ColumnElement[bool]:
    """The filter compiled for the session's database, saved segments loaded and inlined."""
    tree = as_tree(text_or_tree)
    segments = await load_segments(session, tree)
    return compile_filter(tree, dialect=_dialect(session), segments=segments, now=now)


async def _where(session: AsyncSession, flt: FilterInput | None) -> ColumnElement[bool] | None:
    if flt is None:
        return None
    where = await resolve_filter(session, flt)
    await plan_with_values(session)
    return where


def database_error(e: DBAPIError) -> FilterError:
    """A database error a filter caused (e.g. a regular expression PostgreSQL refuses, or one
    that passed its time limit in SQLite's ``REGEXP``)."""
    detail = str(getattr(e, "orig", e)).splitlines()[0]
    if FUNCTION_FAILED in detail:
        return RegexTooSlow()
    return FilterError(f"the database refused the filter: {detail}")


async def count_statement(session: AsyncSession, flt: FilterInput | None = None) -> Select[Any]:
    """The ``SELECT count(*)`` :func:`count_users` runs (benchmarks time it on its own)."""
    stmt = select(func.count()).select_from(User.__table__)
    where = await _where(session, flt)
    return stmt if where is None else stmt.where(where)


async def count_users(session: AsyncSession, flt: FilterInput | None = None) -> int:
    """How many users match ``flt`` (all users when ``None``)."""
    stmt = await count_statement(session, flt)
    try:
        return int((await session.execute(stmt)).scalar_one())
    except DBAPIError as e:
        raise database_error(e) from e


async def find_users(
    session: AsyncSession,
    flt: FilterInput | None = None,
    *,
    limit: int | None = 20,
    after_id: int | None = None,
) -> Sequence[User]:
    """Users matching ``flt`` in id order; page with ``after_id`` (the last id seen)."""
    stmt = select(User).order_by(User.id)
    where = await _where(session, flt)
    if where is not None:
        stmt = stmt.where(where)
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    try:
        return (await session.execute(stmt)).scalars().all()
    except DBAPIError as e:
        raise database_error(e) from e


async def find_user_ids(session: AsyncSession, flt: FilterInput | None = None) -> list[int]:
    """Every matching user id (for snapshots such as broadcast recipients)."""
    stmt = select(User.id).order_by(User.id)
    where = await _where(session, flt)
    if where is not None:
        stmt = stmt.where(where)
    try:
        return list((await session.execute(stmt)).scalars().all())
    except DBAPIError as e:
        raise database_error(e) from e


# -- saved segments ----------------------------------------------------------------------------
async def get_segment(session: AsyncSession, name: str) -> Segment:
    seg = await session.scalar(select(Segment).where(Segment.name == name))
    if seg is None:
        raise NotFound(f"segment {name!r} not found")
    return seg


async def list_segments(session: AsyncSession) -> Sequence[Segment]:
    return (await session.execute(select(Segment).order_by(Segment.name))).scalars().all()


async def save_segment(
    session: AsyncSession, name: str, filter_text: str, *, description: str | None = None
) -> Segment:
    """Create or replace a saved segment; the filter must parse and every segment it refers to
    must exist without a cycle."""
    name = check_segment_name(name)
    tree = parse_filter(filter_text)
    segments = await load_segments(session, tree) if segment_names(tree) else {}
    # Unknown names, cycles, depth and size: as every use of the new segment will check them.
    lower(tree, now=utcnow(), segments=segments, _stack=(name,))
    await _check_users_of(session, name, tree)
    seg = await session.scalar(select(Segment).where(Segment.name == name))
    if seg is None:
        seg = Segment(name=name, filter=filter_text.strip(), description=description)
        session.add(seg)
    else:
        seg.filter = filter_text.strip()
        if description is not None:
            seg.description = description
        seg.updated_at = utcnow()
    await session.flush()
    log.debug("segment %s saved: %s", name, filter_text)
    return seg


async def _check_users_of(session: AsyncSession, name: str, tree: FilterTree) -> None:
    """Saving ``name`` as ``tree`` must keep every saved segment that uses it within the limits
    (a deeper or larger ``name`` deepens and enlarges them too)."""
    saved: dict[str, FilterTree] = {}
    for other, filter_text in await session.execute(select(Segment.name, Segment.filter)):
        try:
            saved[other] = parse_filter(filter_text)
        except FilterError:
            continue  # an invalid saved segment is reported where it is used
    saved[name] = tree
    users = {n for n, t in saved.items() if name in segment_names(t)}
    pending = set(users)
    while pending:  # everything that reaches ``name`` through other segments
        pending = {n for n, t in saved.items() if segment_names(t) & pending} - users
        users |= pending
    now = utcnow()
    for user in sorted(users - {name}):
        try:
            lower(saved[user], now=now, segments=saved, _stack=(user,))
        except FilterError as e:
            raise FilterError(f"saving segment {name!r} would break segment {user!r}: {e}"
                              ) from e  # fmt: skip


async def delete_segment(session: AsyncSession, name: str) -> None:
    """Delete a saved segment; refused while another segment refers to it."""
    seg = await get_segment(session, name)
    for other in await list_segments(session):
        if other.name != name:
            try:
                refs = segment_names(parse_filter(other.filter))
            except FilterError:
                continue
            if name in refs:
                raise InvalidInput(f"segment {name!r} is used by segment {other.name!r}")
    await session.execute(delete(Segment).where(Segment.id == seg.id))
    log.debug("segment %s deleted", name)
