"""What the user card shows of a user's history: the conversation both ways and the events
timeline (see :mod:`relove.events.timeline`).

The conversation comes from the ``messages`` table (what the user wrote; what operators wrote
from the console) and, for the companion's answers, from its memory (``context.turns``,
assistant turns not written by an operator); newest last."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.events import EventSource
from relove.events.models import Event, Message
from relove.events.timeline import EventRow, Page, decode_cursor, encode_cursor

CONVERSATION_LIMIT = 50
E = Event.__table__


@dataclass(frozen=True)
class Bubble:
    at: datetime | None
    direction: str  # in | out
    text: str
    #: user | operator | bot
    who: str
    actor: str | None = None
    kind: str = "text"


def _turn_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def conversation(session: AsyncSession, user_id: int, context: Mapping[str, Any],
                       limit: int = CONVERSATION_LIMIT) -> list[Bubble]:
    rows = (await session.execute(
        select(Message.at, Message.direction, Message.kind, Message.text, Message.actor)
        .where(Message.user_id == user_id)
        .order_by(Message.at.desc(), Message.id.desc())
        .limit(limit)
    )).all()
    bubbles = [
        Bubble(at, direction, text or f"[{kind}]",
               "user" if direction == "in" else ("operator" if kind == "operator" else "bot"),
               actor, kind)
        for at, direction, kind, text, actor in rows
    ]
    turns = context.get("turns")
    for turn in turns if isinstance(turns, list) else []:
        if (isinstance(turn, dict) and turn.get("role") == "assistant" and not turn.get("by")
                and isinstance(turn.get("text"), str)):
            bubbles.append(Bubble(_turn_time(turn.get("at")), "out", turn["text"], "bot"))
    floor = datetime.min.replace(tzinfo=UTC)
    bubbles.sort(key=lambda b: b.at or floor)
    return bubbles[-limit:]


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
