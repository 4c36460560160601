"""The broadcasts one user received (or was meant to): newest first, for the user card."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts.models import Broadcast, Delivery


@dataclass(frozen=True, slots=True)
class Received:
    broadcast_id: int
    name: str
    status: str
    sent_at: datetime | None
    error: str | None


async def received_by(session: AsyncSession, user_id: int, limit: int = 20) -> list[Received]:
    rows = await session.execute(
        select(Delivery.broadcast_id, Broadcast.name, Delivery.status, Delivery.sent_at,
               Delivery.error)
        .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
        .where(Delivery.user_id == user_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return [Received(bid, name, str(getattr(status, "value", status)), sent_at, error)
            for bid, name, status, sent_at, error in rows]
