"""Broadcasts as operators use them: create, preview, start, schedule, pause, resume, cancel,
stats. The session is the caller's; functions flush, the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, String, func, insert, literal, select, true, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts.content import (
    MessageContent,
    MessageTemplate,
    Recipient,
    RenderedMessage,
)
from relove.broadcasts.history import broadcast_completed, broadcast_started, delivery_counts
from relove.broadcasts.links import button_rewriter
from relove.broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus, MediaKind
from relove.db.models import User, UserSnapshot
from relove.db.types import utcnow
from relove.errors import InvalidInput, NotFound
from relove.segments import resolve_filter
from relove.segments.service import plan_with_values

SAMPLES = 3
RATE_WINDOW_S = 10.0
_STARTABLE = (BroadcastStatus.draft, BroadcastStatus.scheduled)
_CANCELLABLE = (
    BroadcastStatus.draft,
    BroadcastStatus.scheduled,
    BroadcastStatus.running,
    BroadcastStatus.paused,
)


class StateConflict(InvalidInput):
    """The broadcast is not in a state that allows the requested change."""


# --- reading -------------------------------------------------------------------------------------
async def get_broadcast(session: AsyncSession, broadcast_id: int) -> Broadcast:
    broadcast = await session.get(Broadcast, broadcast_id, populate_existing=True)
    if broadcast is None:
        raise NotFound(f"broadcast {broadcast_id} not found")
    return broadcast


async def list_broadcasts(
    session: AsyncSession, limit: int = 50, *, before_id: int | None = None
) -> Sequence[Broadcast]:
    """The newest first; page with ``before_id`` (the last id seen)."""
    stmt = select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(Broadcast.id < before_id)
    rows = await session.execute(stmt)
    return rows.scalars().all()


def content_of(broadcast: Broadcast) -> MessageContent:
    return MessageContent(
        text=broadcast.text,
        media_kind=MediaKind(broadcast.media_kind) if broadcast.media_kind else None,
        media=broadcast.media,
        buttons=MessageContent.buttons_from_json(broadcast.buttons),
    )


def template_of(broadcast: Broadcast) -> MessageTemplate:
    """The stored broadcast's template (its names were checked when it was created)."""
    content = content_of(broadcast)
    return MessageTemplate(content, button_rewriter(broadcast.options or {}, content.buttons),
                           check_names=False)  # fmt: skip


def recipient_of(user: User | UserSnapshot) -> Recipient:
    return Recipient(
        id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        gender=str(user.gender.value if hasattr(user.gender, "value") else user.gender),
        markers=dict(user.markers or {}),
        context=dict(user.context or {}),
    )


async def audience(session: AsyncSession, filter_text: str) -> ColumnElement[bool]:
    """Active users matching the filter (raises FilterError on a bad filter). On PostgreSQL the
    transaction's statements are planned with their values (no generic plan for a filter)."""
    where = await resolve_filter(session, filter_text)
    await plan_with_values(session)
    return (User.is_active == true()) & where


async def sample_recipients(
    session: AsyncSession, where: ColumnElement[bool], n: int = SAMPLES
) -> list[Recipient]:
    users = (await session.execute(select(User).where(where).order_by(User.id).limit(n))).scalars()
    return [recipient_of(u) for u in users]


async def count_audience(session: AsyncSession, where: ColumnElement[bool]) -> int:
    result = await session.execute(select(func.count()).select_from(User).where(where))
    return int(result.scalar_one())


# --- creating ------------------------------------------------------------------------------------
async def create_broadcast(
    session: AsyncSession,
    *,
    name: str,
    filter_text: str,
    content: MessageContent,
    scheduled_at: datetime | None = None,
    paid: bool = False,
    rate: float | None = None,
    created_by: int | None = None,
    options: dict[str, Any] | None = None,
) -> Broadcast:
    """A draft (or, with ``scheduled_at``, a scheduled broadcast), its filter and template
    checked now: the template is rendered for sample recipients and must be valid HTML.

    The row is written first and checked after (the caller rolls back on an error): on SQLite
    a transaction that reads and then writes fails at once if another connection committed in
    between, while one that writes first waits for the lock."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a broadcast needs a name of 1 to 200 characters")
    if scheduled_at is not None and scheduled_at.tzinfo is None:
        raise InvalidInput("the schedule time needs a timezone, e.g. 2026-12-01T10:00+03:00")
    if rate is not None and not 0 < rate <= 1000:
        raise InvalidInput("the rate must be between 0 and 1000 messages per second")
    opts = dict(options or {})
    opts["paid"] = bool(paid)
    if rate is not None:
        opts["rate"] = rate
    broadcast = Broadcast(
        name=name,
        text=content.text,
        media_kind=content.media_kind,
        media=content.media,
        buttons=content.buttons_json(),
        filter=filter_text,
        status=BroadcastStatus.scheduled if scheduled_at else BroadcastStatus.draft,
        scheduled_at=scheduled_at,
        options=opts,
        created_by=created_by,
    )
    session.add(broadcast)
    await session.flush()
    where = await audience(session, filter_text)
    await MessageTemplate(content).validate(await sample_recipients(session, where))
    return broadcast


async def set_progress_message(
    session: AsyncSession, broadcast_id: int, chat_id: int, message_id: int
) -> None:
    """Where the bot shows this broadcast's progress (a message it edits in place)."""
    broadcast = await get_broadcast(session, broadcast_id)
    broadcast.options = {
        **(broadcast.options or {}),
        "progress_chat_id": chat_id,
        "progress_message_id": message_id,
    }
    await session.flush()


@dataclass(slots=True)
class Preview:
    broadcast: Broadcast
    count: int
    samples: list[tuple[Recipient, RenderedMessage]]


async def preview(session: AsyncSession, broadcast_id: int, n: int = SAMPLES) -> Preview:
    """How many active users the filter matches now, and the message for the first ``n``."""
    broadcast = await get_broadcast(session, broadcast_id)
    where = await audience(session, broadcast.filter)
    template = template_of(broadcast)
    samples = await sample_recipients(session, where, n)
    return Preview(
        broadcast,
        await count_audience(session, where),
        [(r, await template.arender(r)) for r in samples],
    )


# --- state changes -------------------------------------------------------------------------------
async def _transition(
    session: AsyncSession,
    broadcast_id: int,
    allowed: Sequence[BroadcastStatus],
    values: dict[str, Any],
    verb: str,
) -> None:
    # DML answers a CursorResult (it has rowcount); Session.execute is typed as plain Result.
    result = cast(CursorResult[Any], await session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    ))
    if not result.rowcount:
        broadcast = await get_broadcast(session, broadcast_id)
        raise StateConflict(
            f"broadcast {broadcast_id} is {broadcast.status.value}; cannot {verb} it"
        )


async def start_broadcast(
    session: AsyncSession,
    broadcast_id: int,
    *,
    owner: str | None = None,
    lease_ttl: float = 30.0,
    statuses: Sequence[BroadcastStatus] = _STARTABLE,
    actor: str | None = None,
) -> int:
    """draft/scheduled → running, snapshotting the recipients into deliveries in one
    ``INSERT … SELECT``; returns their number. With ``owner`` the caller also takes the lease.
    Records ``broadcast.started`` (``actor``: who started it)."""
    now = utcnow()
    values: dict[str, Any] = {"status": BroadcastStatus.running, "started_at": now, "reason": None}
    if owner is not None:
        values.update(lease_owner=owner, lease_until=now + timedelta(seconds=lease_ttl))
    await _transition(session, broadcast_id, statuses, values, "start")
    broadcast = await get_broadcast(session, broadcast_id)
    where = await audience(session, broadcast.filter)
    recipients = select(
        literal(broadcast_id, Integer),
        User.id,
        literal(DeliveryStatus.pending.value, String),
        literal(0, Integer),
    ).where(where)
    result = cast(CursorResult[Any], await session.execute(
        insert(Delivery.__table__).from_select(
            ["broadcast_id", "user_id", "status", "attempts"], recipients
        )
    ))
    count = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else 0
    await broadcast_started(session, broadcast_id, count, actor=actor)
    if not count:
        await session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id)
            .values(status=BroadcastStatus.finished, finished_at=now, reason="no recipients",
                    lease_owner=None, lease_until=None)
        )
        await broadcast_completed(session, broadcast_id, {}, BroadcastStatus.finished.value)
    await session.flush()
    return count


async def schedule(session: AsyncSession, broadcast_id: int, at: datetime) -> None:
    """draft/scheduled → scheduled at ``at`` (the console's Schedule button)."""
    if at.tzinfo is None:
        raise InvalidInput("the schedule time needs a timezone")
    await _transition(
        session, broadcast_id, _STARTABLE,
        {"status": BroadcastStatus.scheduled, "scheduled_at": at}, "schedule",
    )


async def pause(session: AsyncSession, broadcast_id: int, reason: str | None = None) -> None:
    await _transition(
        session, broadcast_id, [BroadcastStatus.running],
        {"status": BroadcastStatus.paused, "reason": reason or "paused by an operator"}, "pause",
    )


async def resume(session: AsyncSession, broadcast_id: int) -> None:
    """paused → running; a worker picks it up where it stopped."""
    await _transition(
        session, broadcast_id, [BroadcastStatus.paused],
        {"status": BroadcastStatus.running, "reason": None}, "resume",
    )


async def cancel(session: AsyncSession, broadcast_id: int) -> None:
    """Stop for good; deliveries not sent yet stay pending (and are counted as such). A
    broadcast that had started records ``broadcast.completed`` (status ``cancelled``)."""
    await _transition(
        session, broadcast_id, _CANCELLABLE,
        {"status": BroadcastStatus.cancelled, "finished_at": utcnow(),
         "reason": "cancelled by an operator"}, "cancel",
    )
    broadcast = await get_broadcast(session, broadcast_id)
    if broadcast.started_at is not None:
        counts = await delivery_counts(session, broadcast_id)
        await broadcast_completed(session, broadcast_id, counts, BroadcastStatus.cancelled.value)


async def resend_unknown(session: AsyncSession, broadcast_id: int) -> int:
    """Queue the ``unknown`` deliveries again (those users may get the message twice)."""
    broadcast = await get_broadcast(session, broadcast_id)
    if broadcast.status in (BroadcastStatus.cancelled, BroadcastStatus.draft):
        raise InvalidInput(f"broadcast {broadcast_id} is {broadcast.status.value}")
    result = cast(CursorResult[Any], await session.execute(
        update(Delivery)
        .where(Delivery.broadcast_id == broadcast_id, Delivery.status == DeliveryStatus.unknown)
        .values(status=DeliveryStatus.pending, error=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ))
    if result.rowcount and broadcast.status in (BroadcastStatus.finished, BroadcastStatus.failed):
        await session.execute(
            update(Broadcast).where(Broadcast.id == broadcast_id)
            .values(status=BroadcastStatus.running, finished_at=None, reason=None)
        )
    return int(result.rowcount or 0)


# --- stats ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class BroadcastStats:
    id: int
    name: str
    status: str
    targeted: int
    pending: int
    sending: int
    sent: int
    blocked: int
    failed: int
    unknown: int
    rate: float
    eta_seconds: float | None
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> int:
        return self.sent + self.blocked + self.failed + self.unknown

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "status": self.status, "targeted": self.targeted,
            "sent": self.sent, "blocked": self.blocked, "failed": self.failed,
            "unknown": self.unknown, "pending": self.pending, "sending": self.sending,
            "rate": round(self.rate, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "reason": self.reason,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


async def stats(session: AsyncSession, broadcast_id: int) -> BroadcastStats:
    broadcast = await get_broadcast(session, broadcast_id)
    rows = await session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.broadcast_id == broadcast_id)
        .group_by(Delivery.status)
    )
    counts = {DeliveryStatus(s).value: int(n) for s, n in rows}
    if broadcast.status in _STARTABLE:
        targeted = await count_audience(session, await audience(session, broadcast.filter))
    else:
        targeted = sum(counts.values())
    rate = 0.0
    now = utcnow()
    if broadcast.status is BroadcastStatus.running and broadcast.started_at:
        window = min(RATE_WINDOW_S, max((now - broadcast.started_at).total_seconds(), 1.0))
        recent = await session.execute(
            select(func.count()).where(
                Delivery.broadcast_id == broadcast_id,
                Delivery.sent_at >= now - timedelta(seconds=window),
            )
        )
        rate = int(recent.scalar_one()) / window
    pending = counts.get("pending", 0) + counts.get("sending", 0)
    eta = pending / rate if rate > 0 else None
    return BroadcastStats(
        id=broadcast.id, name=broadcast.name, status=broadcast.status.value, targeted=targeted,
        pending=counts.get("pending", 0), sending=counts.get("sending", 0),
        sent=counts.get("sent", 0), blocked=counts.get("blocked", 0),
        failed=counts.get("failed", 0), unknown=counts.get("unknown", 0), rate=rate,
        eta_seconds=eta, reason=broadcast.reason, started_at=broadcast.started_at,
        finished_at=broadcast.finished_at,
    )
