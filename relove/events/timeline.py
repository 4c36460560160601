"""Reading history: a user's events (or everyone's), newest first, in cursor-paginated pages.

A page is read by the index ``(user_id, at DESC, id DESC)`` from the cursor on, so the first
page and the thousandth cost the same. The cursor is opaque text (the last row's ``at`` and
``id``); a page is full when ``next_cursor`` is set.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from relove.errors import InvalidInput
from relove.events.models import Event, event_dict

Executor = AsyncSession | AsyncConnection
E = Event.__table__

MAX_LIMIT = 1000


@dataclass(frozen=True)
class EventRow:
    id: int
    user_id: int | None
    name: str
    props: dict[str, Any]
    source: str
    actor: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return event_dict(self)


@dataclass(frozen=True)
class Page:
    events: list[EventRow]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "next_cursor": self.next_cursor}


def encode_cursor(at: datetime, row_id: int) -> str:
    raw = f"{at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, _, id_text = raw.rpartition("|")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, int(id_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"invalid cursor {cursor[:40]!r}") from None


def name_condition(patterns: str | Sequence[str]) -> Any:
    """Names matching any of the patterns (comma-separated text or a list); ``*`` matches any
    run of characters (``marker.*``, ``*.clicked``)."""
    items = patterns.split(",") if isinstance(patterns, str) else list(patterns)
    conditions: list[Any] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if "*" in item:
            like = item.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(E.c.name.like(like.replace("*", "%"), escape="\\"))
        else:
            conditions.append(E.c.name == item)
    if not conditions:
        raise InvalidInput("no event name given")
    return or_(*conditions)


def _row(r: Any) -> EventRow:
    return EventRow(r.id, r.user_id, r.name, dict(r.props or {}), r.source, r.actor, r.at)


async def timeline(
    executor: Executor,
    user_id: int | None,
    *,
    limit: int = 50,
    cursor: str | None = None,
    names: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page:
    """Events of one user (``user_id``), or of everyone (``None``), newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    where: list[Any] = []
    if user_id is not None:
        where.append(E.c.user_id == user_id)
    if names:
        where.append(name_condition(names))
    if since is not None:
        where.append(E.c.at >= since)
    if until is not None:
        where.append(E.c.at < until)
    if cursor:
        at, row_id = decode_cursor(cursor)
        where += [E.c.at <= at, or_(E.c.at < at, and_(E.c.at == at, E.c.id < row_id))]
    stmt = (
        select(E.c.id, E.c.user_id, E.c.name, E.c.props, E.c.source, E.c.actor, E.c.at)
        .where(*where)
        .order_by(E.c.at.desc(), E.c.id.desc())
        .limit(limit + 1)
    )
    rows = [_row(r) for r in (await executor.execute(stmt)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].at, rows[-1].id) if more else None
    return Page(rows, next_cursor)
