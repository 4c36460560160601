"""Per broadcast: its tracked links (clicks come from ``link.clicked`` events)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts.links import TrackedLink
from relove.broadcasts.models import Broadcast


@dataclass(frozen=True)
class LinkRow:
    id: int
    label: str
    url: str


async def link_report(session: AsyncSession, broadcast: Broadcast) -> list[LinkRow]:
    rows = (await session.execute(
        select(TrackedLink).where(TrackedLink.broadcast_id == broadcast.id)
        .order_by(TrackedLink.id)
    )).scalars().all()
    return [LinkRow(r.id, r.label, r.url) for r in rows]
