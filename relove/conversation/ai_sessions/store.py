"""Database operations of AI sessions. The caller owns the transaction (these never commit).

Every state change is one ``UPDATE … WHERE status = 'active'`` (a compare-and-set), so two
messages or two processes never both end a session or both take its turn; each change writes
its event in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relove.conversation.ai_sessions.models import AISession, AISessionTurn, SessionStatus
from relove.db.types import utcnow
from relove.events import EventSource, record
from relove.events.catalog import (
    AI_SESSION_ABANDONED,
    AI_SESSION_COMPLETED,
    AI_SESSION_STARTED,
    AI_SESSION_TURN,
)
from relove.users.service import set_values, unset

#: ``context.ai_session``: a cheap hint for the bot's filters ({id, mode}); the table decides.
CONTEXT_KEY = "ai_session"
MAX_TURN_CHARS = 4000


@dataclass(frozen=True)
class SessionRow:
    id: int
    user_id: int
    mode: str
    status: str
    turn_count: int
    started_at: datetime
    last_activity_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    lease_until: datetime | None
    result: dict[str, Any] | None


def _row(r: Any) -> SessionRow:
    return SessionRow(
        r.id, r.user_id, r.mode, r.status, r.turn_count, r.started_at, r.last_activity_at,
        r.ended_at, r.end_reason, r.lease_until, r.result,
    )  # fmt: skip


def actor(session_id: int) -> str:
    return f"ai_session:{session_id}"


async def active(s: AsyncSession, user_id: int) -> SessionRow | None:
    t = AISession.__table__
    r = (await s.execute(select(t).where(t.c.user_id == user_id, t.c.status == "active"))).first()
    return _row(r) if r else None


async def get(s: AsyncSession, session_id: int) -> SessionRow | None:
    t = AISession.__table__
    r = (await s.execute(select(t).where(t.c.id == session_id))).first()
    return _row(r) if r else None


async def open_session(s: AsyncSession, user_id: int, mode: str) -> tuple[int, SessionRow | None]:
    """Start ``mode`` for the user, abandoning the session they had (``"switch"``)."""
    previous = await active(s, user_id)
    if previous is not None:
        await close(s, previous, SessionStatus.abandoned, "switch", keep_hint=True)
    now = utcnow()
    t = AISession.__table__
    new_id = (
        await s.execute(
            insert(t)
            .values(
                user_id=user_id,
                mode=mode,
                status="active",
                turn_count=0,
                started_at=now,
                last_activity_at=now,
            )  # fmt: skip
            .returning(t.c.id)
        )
    ).scalar_one()
    await set_values(s, user_id, {CONTEXT_KEY: {"id": new_id, "mode": mode}}, doc="context")
    await record(s, user_id, AI_SESSION_STARTED, {"session": new_id, "mode": mode},
                 source=EventSource.bot, actor=actor(new_id))  # fmt: skip
    return new_id, previous


async def claim(s: AsyncSession, session_id: int, seconds: float) -> datetime | None:
    """Take the session's lease for ``seconds`` (one message at a time); ``None`` if another
    message holds it or the session is no longer active. Returns the lease (its token)."""
    t = AISession.__table__
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    result = await s.execute(
        update(t)
        .where(
            t.c.id == session_id,
            t.c.status == "active",
            or_(t.c.lease_until.is_(None), t.c.lease_until < now),
        )  # fmt: skip
        .values(lease_until=until)
    )
    return until if result.rowcount == 1 else None  # type: ignore[attr-defined]


async def release(s: AsyncSession, session_id: int, lease: datetime) -> None:
    t = AISession.__table__
    await s.execute(
        update(t).where(t.c.id == session_id, t.c.lease_until == lease).values(lease_until=None)
    )


async def add_turn(s: AsyncSession, row: SessionRow, role: str, text: str) -> int:
    """Append a message; a user message also counts one exchange. Returns the new count."""
    tt = AISessionTurn.__table__
    n = (
        await s.execute(select(func.coalesce(func.max(tt.c.n), 0)).where(tt.c.session_id == row.id))
    ).scalar_one() + 1
    clipped = text if len(text) <= MAX_TURN_CHARS else text[: MAX_TURN_CHARS - 1] + "…"
    await s.execute(insert(tt).values(session_id=row.id, n=n, role=role, text=clipped,
                                      at=utcnow()))  # fmt: skip
    t = AISession.__table__
    values: dict[str, Any] = {"last_activity_at": utcnow()}
    if role == "user":
        values["turn_count"] = t.c.turn_count + 1
    count = (
        await s.execute(
            update(t).where(t.c.id == row.id).values(**values).returning(t.c.turn_count)
        )
    ).scalar_one()
    if role == "user":
        await record(s, row.user_id, AI_SESSION_TURN,
                     {"session": row.id, "mode": row.mode, "turn": count},
                     source=EventSource.bot, actor=actor(row.id))  # fmt: skip
    return int(count)


async def turns(s: AsyncSession, session_id: int) -> list[tuple[str, str]]:
    tt = AISessionTurn.__table__
    rows = await s.execute(
        select(tt.c.role, tt.c.text).where(tt.c.session_id == session_id).order_by(tt.c.n)
    )
    return [(r.role, r.text) for r in rows]


async def close(
    s: AsyncSession,
    row: SessionRow,
    status: SessionStatus,
    reason: str,
    *,
    result: dict[str, Any] | None = None,
    lease: datetime | None = None,
    keep_hint: bool = False,
) -> bool:
    """End an active session (once: False if it had already ended, or the lease is not ours)."""
    t = AISession.__table__
    cond = [t.c.id == row.id, t.c.status == "active"]
    if lease is not None:
        cond.append(t.c.lease_until == lease)
    done = await s.execute(
        update(t)
        .where(and_(*cond))
        .values(
            status=status.value,
            end_reason=reason,
            ended_at=utcnow(),
            lease_until=None,
            result=result,
        )  # fmt: skip
        .returning(t.c.turn_count)
    )
    turn_count = done.scalar_one_or_none()
    if turn_count is None:
        return False
    if not keep_hint:
        await unset(s, row.user_id, [CONTEXT_KEY], doc="context")
    props: dict[str, Any] = {"session": row.id, "mode": row.mode, "turns": turn_count}
    if status is SessionStatus.completed:
        name = AI_SESSION_COMPLETED
    else:
        name = AI_SESSION_ABANDONED
        props["reason"] = reason
    await record(s, row.user_id, name, props, source=EventSource.bot, actor=actor(row.id))
    return True


async def list_sessions(
    s: AsyncSession, *, user_id: int | None = None, limit: int = 50
) -> list[SessionRow]:
    t = AISession.__table__
    q = select(t).order_by(t.c.id.desc()).limit(limit)
    if user_id is not None:
        q = q.where(t.c.user_id == user_id)
    return [_row(r) for r in await s.execute(q)]
