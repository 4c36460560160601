"""SQLAlchemy implementation of :class:`DeliveryStore` (PostgreSQL and SQLite alike).

Every state change is its own short transaction, committed before the sender goes on: pages are
read by keyset (``id > last``), a chunk is marked ``sending`` in one UPDATE guarded by the lease,
outcomes are written as one bound JSON array per batch, each with its ``delivery.*`` event
(see :mod:`relove.broadcasts.history`) in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.broadcasts.base import DeliveryResult, DeliveryStore, PendingDelivery
from relove.broadcasts.content import Recipient
from relove.broadcasts.history import (
    broadcast_completed,
    delivery_counts,
    mark_in_flight_unknown,
    outcome_statements,
    outcomes_json,
)
from relove.broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus
from relove.db.models import User
from relove.db.types import utcnow
from relove.events import EventSource
from relove.ops import metrics
from relove.users.lifecycle import set_active

D = Delivery.__table__
B = Broadcast.__table__
U = User.__table__

def _held(broadcast_id: int, owner: str):  # type: ignore[no-untyped-def]
    """The broadcast is running and ``owner`` holds its lease, which has not expired (after
    that another worker may take it over at any moment)."""
    return exists().where(
        B.c.id == broadcast_id,
        B.c.status == BroadcastStatus.running.value,
        B.c.lease_owner == owner,
        B.c.lease_until > utcnow(),
    )


class SqlDeliveryStore(DeliveryStore):
    def __init__(
        self, engine: AsyncEngine, *, with_markers: bool = True, with_context: bool = True
    ) -> None:
        self.engine = engine
        self._outcomes = outcome_statements(engine.dialect.name)
        # SQLite has one writer at a time and makes a second one sleep in its busy handler
        # (1 ms, 2 ms, 5 ms …): queue this store's writes here instead. PostgreSQL commits
        # concurrent transactions together, so writes overlap there.
        self._writes: AbstractAsyncContextManager[object] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else nullcontext())
        # The sender loads only the documents its template uses (context can be large).
        self.with_markers = with_markers
        self.with_context = with_context

    async def next_pending(
        self, broadcast_id: int, after_id: int, limit: int
    ) -> list[PendingDelivery]:
        columns = [D.c.id, D.c.attempts, U.c.id, U.c.username, U.c.first_name, U.c.last_name,
                   U.c.gender]
        columns.append(U.c.markers if self.with_markers else None)  # type: ignore[arg-type]
        columns.append(U.c.context if self.with_context else None)  # type: ignore[arg-type]
        query = (
            select(*[c for c in columns if c is not None])
            .select_from(D.join(U, U.c.id == D.c.user_id))
            .where(
                D.c.broadcast_id == broadcast_id,
                D.c.status == DeliveryStatus.pending.value,
                D.c.id > after_id,
            )
            .order_by(D.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for row in rows:
            values = list(row)
            markers = values[7] if self.with_markers else {}
            context = values[-1] if self.with_context else {}
            out.append(
                PendingDelivery(
                    delivery_id=values[0],
                    attempts=values[1],
                    recipient=Recipient(
                        id=values[2], username=values[3], first_name=values[4],
                        last_name=values[5], gender=values[6], markers=markers or {},
                        context=context or {},
                    ),
                )
            )
        return out

    async def mark_sending(
        self, broadcast_id: int, owner: str, delivery_ids: Sequence[int]
    ) -> set[int]:
        stmt = (
            update(D)
            .where(
                D.c.id.in_(list(delivery_ids)),
                D.c.broadcast_id == broadcast_id,
                D.c.status == DeliveryStatus.pending.value,
                _held(broadcast_id, owner),
            )
            .values(status=DeliveryStatus.sending.value, updated_at=utcnow())
            .returning(D.c.id)
        )
        async with self._writes, self.engine.begin() as conn:
            return set((await conn.execute(stmt)).scalars().all())

    async def record(self, broadcast_id: int, results: Sequence[DeliveryResult]) -> None:
        if not results:
            return
        params = {
            "rows": outcomes_json(results, sqlite=self.engine.dialect.name == "sqlite"),
            "now": utcnow(),
        }
        blocked = [r.user_id for r in results if r.status is DeliveryStatus.blocked]
        async with self._writes, self.engine.begin() as conn:
            for stmt in self._outcomes:
                await conn.execute(stmt, params)
            if blocked:
                await set_active(conn, blocked, False, source=EventSource.broadcast)

    async def heartbeat(self, broadcast_id: int, owner: str, ttl: float) -> BroadcastStatus | None:
        stmt = (
            update(B)
            .where(B.c.id == broadcast_id, B.c.lease_owner == owner)
            .values(lease_until=utcnow() + timedelta(seconds=ttl))
            .returning(B.c.status)
        )
        async with self.engine.begin() as conn:
            status = (await conn.execute(stmt)).scalar_one_or_none()
        return BroadcastStatus(status) if status is not None else None

    async def finish(self, broadcast_id: int, owner: str) -> bool:
        open_rows = exists().where(
            D.c.broadcast_id == broadcast_id,
            D.c.status.in_([DeliveryStatus.pending.value, DeliveryStatus.sending.value]),
        )
        stmt = (
            update(B)
            .where(B.c.id == broadcast_id, B.c.status == BroadcastStatus.running.value,
                   B.c.lease_owner == owner, ~open_rows)
            .values(status=BroadcastStatus.finished.value, finished_at=utcnow(), reason=None)
        )
        async with self.engine.begin() as conn:
            if not (await conn.execute(stmt)).rowcount:
                return False
            counts = await delivery_counts(conn, broadcast_id)
            await broadcast_completed(conn, broadcast_id, counts, BroadcastStatus.finished.value)
            return True

    async def pause(self, broadcast_id: int, owner: str, reason: str) -> None:
        stmt = (
            update(B)
            .where(B.c.id == broadcast_id, B.c.status == BroadcastStatus.running.value,
                   B.c.lease_owner == owner)
            .values(status=BroadcastStatus.paused.value, reason=reason)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def release(self, broadcast_id: int, owner: str) -> None:
        stmt = (
            update(B)
            .where(B.c.id == broadcast_id, B.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)


async def claim_running(engine: AsyncEngine, broadcast_id: int, owner: str, ttl: float) -> bool:
    """Take a running broadcast whose lease is free or expired; its ``sending`` rows (left by a
    worker that died mid-send) become ``unknown`` in the same transaction."""
    now = utcnow()
    stmt = (
        update(B)
        .where(
            B.c.id == broadcast_id,
            B.c.status == BroadcastStatus.running.value,
            or_(B.c.lease_until.is_(None), B.c.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=ttl))
    )
    async with engine.begin() as conn:
        if not (await conn.execute(stmt)).rowcount:
            return False
        await mark_in_flight_unknown(conn, broadcast_id, now)
    return True


async def claimable_ids(engine: AsyncEngine) -> tuple[list[int], list[int]]:
    """(scheduled broadcasts that are due, running broadcasts whose lease is free or expired)."""
    now = utcnow()
    due = select(B.c.id).where(
        B.c.status == BroadcastStatus.scheduled.value, B.c.scheduled_at <= now
    ).order_by(B.c.scheduled_at, B.c.id)
    orphaned = select(B.c.id).where(
        B.c.status == BroadcastStatus.running.value,
        or_(B.c.lease_until.is_(None), B.c.lease_until < now),
    ).order_by(B.c.id)
    async with engine.connect() as conn:
        return (
            list((await conn.execute(due)).scalars()),
            list((await conn.execute(orphaned)).scalars()),
        )


__all__ = ["SqlDeliveryStore", "claim_running", "claimable_ids"]


async def count_pending_deliveries(engine: AsyncEngine) -> int:
    """Deliveries of running broadcasts not sent yet (the ``relove_broadcast_pending`` gauge,
    read at scrape time by the (broadcast_id, status, id) index)."""
    running = select(B.c.id).where(B.c.status == BroadcastStatus.running)
    async with engine.connect() as conn:
        pending = await conn.scalar(select(func.count()).select_from(D).where(
            D.c.broadcast_id.in_(running),
            D.c.status.in_([DeliveryStatus.pending, DeliveryStatus.sending])))
    metrics.BROADCAST_PENDING.set(pending or 0)
    return int(pending or 0)
