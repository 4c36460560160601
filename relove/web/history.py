"""What the user card and the log page show of the history: the conversation (the events
room's view: :func:`relove.broadcasts.conversation.conversation`), and console actions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts.conversation import ConversationItem
from relove.broadcasts.conversation import conversation as read_conversation
from relove.events import EventSource
from relove.events.models import Event
from relove.events.timeline import EventRow, Page, decode_cursor, encode_cursor

CONVERSATION_LIMIT = 50
E = Event.__table__


async def conversation(session: AsyncSession, user_id: int,
                       limit: int = CONVERSATION_LIMIT) -> list[ConversationItem]:
    """The last ``limit`` items of the conversation both ways, oldest first (as a chat reads)."""
    page = await read_conversation(session, user_id, limit=limit)
    return list(reversed(page.items))


async def console_log(session: AsyncSession, *, admin_id: int | None = None,
                      cursor: str | None = None, limit: int = 50) -> Page:
    """Console actions (``source=console``), newest first, by the partial index
    ``ix_events_console_at``; ``admin_id`` narrows to one admin."""
    where: list[Any] = [E.c.source == EventSource.console.value]
    if admin_id is not None:
        where.append(E.c.actor == f"admin:{admin_id}")
    if cursor:
        at, row_id = decode_cursor(cursor)
        where += [E.c.at <= at, or_(E.c.at < at, and_(E.c.at == at, E.c.id < row_id))]
    rows = (await session.execute(
        select(E.c.id, E.c.user_id, E.c.name, E.c.props, E.c.source, E.c.actor, E.c.at)
        .where(*where).order_by(E.c.at.desc(), E.c.id.desc()).limit(limit + 1)
    )).all()
    events = [EventRow(r.id, r.user_id, r.name, dict(r.props or {}), r.source, r.actor, r.at)
              for r in rows[:limit]]
    more = len(rows) > limit
    return Page(events, encode_cursor(events[-1].at, events[-1].id) if more else None)
