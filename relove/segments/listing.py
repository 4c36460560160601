"""Reading users for programs: one user or a page of users (a filter in the segment language,
keyset-paginated by id), with only the fields asked for.

A page is ``WHERE <filter> AND id > :after ORDER BY id LIMIT n`` — the primary key index finds
page 9,000 as fast as page 1 (no OFFSET).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from relove.db.models import Gender, User
from relove.errors import InvalidInput, NotFound
from relove.segments.service import (
    FilterInput,
    database_error,
    plan_with_values,
    resolve_filter,
)
from relove.users.paths import check_user_id

Executor = AsyncSession | AsyncConnection
U = User.__table__

USER_FIELDS: tuple[str, ...] = (
    "id", "username", "first_name", "last_name", "is_active", "gender", "markers", "context",
    "created_at", "updated_at", "last_seen_at",
)  # fmt: skip
MAX_PAGE = 1000


def parse_fields(fields: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"id,markers"`` → the fields in their canonical order (``id`` always included)."""
    if fields is None:
        return USER_FIELDS
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    wanted = {f.strip() for f in items if f.strip()}
    unknown = wanted - set(USER_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown field {sorted(unknown)[0]!r}; known: {', '.join(USER_FIELDS)}"
        )
    return tuple(f for f in USER_FIELDS if f in wanted or f == "id")


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("created_at", "updated_at", "last_seen_at"):
        return value.isoformat()
    if name == "gender":
        return Gender(value).value
    if name in ("markers", "context"):
        return dict(value)
    return value


def user_row(row: Any, fields: Sequence[str]) -> dict[str, Any]:
    return {name: _value(name, value) for name, value in zip(fields, row, strict=True)}


@functools.lru_cache(maxsize=256)
def user_select(fields: tuple[str, ...]) -> Select[Any]:
    """``fetch_user``'s statement, built once per field list (building it cost a third of a
    ``GET /users/{id}``'s CPU)."""
    return select(*(U.c[f] for f in fields)).where(U.c.id == bindparam("user_id"))


async def fetch_user(
    executor: Executor, user_id: int, fields: Sequence[str] = USER_FIELDS
) -> dict[str, Any]:
    """One user's fields as JSON-ready values; :class:`NotFound` when there is none."""
    check_user_id(user_id)
    row = (await executor.execute(user_select(tuple(fields)), {"user_id": user_id})).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return user_row(row, fields)


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[dict[str, Any]]
    #: the last id of this page when more may follow (the next page starts after it)
    last_id: int | None


async def page_users(
    session: AsyncSession,
    flt: FilterInput | None = None,
    *,
    limit: int = 100,
    after_id: int | None = None,
    fields: Sequence[str] = USER_FIELDS,
) -> UserPage:
    """Users matching ``flt`` in id order, after ``after_id``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    stmt = select(*(U.c[f] for f in fields)).order_by(U.c.id).limit(limit + 1)
    if flt is not None:
        stmt = stmt.where(await resolve_filter(session, flt))
        await plan_with_values(session)
    if after_id is not None:
        stmt = stmt.where(U.c.id > check_user_id(after_id))
    try:
        rows = (await session.execute(stmt)).all()
    except DBAPIError as e:  # e.g. a regular expression PostgreSQL refuses, or a slow one
        raise database_error(e) from e
    more = len(rows) > limit
    users = [user_row(r, fields) for r in rows[:limit]]
    return UserPage(users, users[-1]["id"] if more and users else None)
