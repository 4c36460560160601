"""Per broadcast: its tracked links with clicks and unique clickers (``link.clicked``
events), and the conversion of the clickers to a marker or an event within N days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Interval, exists, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.util import ClauseAdapter

from relove.broadcasts.links import TrackedLink
from relove.broadcasts.models import Broadcast
from relove.errors import InvalidInput
from relove.events.catalog import LINK_CLICKED, MARKER_CHANGED, check_name
from relove.events.models import Event
from relove.users.paths import parse_path

MAX_DAYS = 365


@dataclass(frozen=True)
class LinkRow:
    id: int
    label: str
    url: str
    clicks: int
    clickers: int


@dataclass(frozen=True)
class Conversion:
    clickers: int
    converted: int

    @property
    def share(self) -> float:
        return self.converted / self.clickers if self.clickers else 0.0


def _clicks_of(broadcast: Broadcast) -> list[Any]:
    return [Event.name == LINK_CLICKED, Event.at >= broadcast.created_at,
            Event.props["broadcast_id"].as_integer() == broadcast.id]


async def link_report(session: AsyncSession, broadcast: Broadcast) -> list[LinkRow]:
    links = (await session.execute(
        select(TrackedLink).where(TrackedLink.broadcast_id == broadcast.id)
        .order_by(TrackedLink.id)
    )).scalars().all()
    if not links:
        return []
    link_id = Event.props["link_id"].as_integer()
    counts = {row[0]: (int(row[1]), int(row[2])) for row in (await session.execute(
        select(link_id, func.count(), func.count(func.distinct(Event.user_id)))
        .where(*_clicks_of(broadcast)).group_by(link_id)
    )).all()}
    return [LinkRow(lk.id, lk.label, lk.url, *counts.get(lk.id, (0, 0))) for lk in links]


async def conversion(session: AsyncSession, broadcast: Broadcast, *, kind: str, name: str,
                     days: int) -> Conversion:
    """Of the users who clicked a link of the broadcast, how many then (within ``days`` of their
    first click) got marker ``name`` (``kind="marker"``: a ``marker.changed`` of that key) or
    did event ``name`` (``kind="event"``)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}")
    if kind == "marker":
        key = ".".join(parse_path(name.strip()))
        target = [Event.name == MARKER_CHANGED, Event.props["key"].as_string() == key]
    elif kind == "event":
        target = [Event.name == check_name(name.strip())]
    else:
        raise InvalidInput("conversion is to a marker or an event")
    first = (select(Event.user_id.label("user_id"), func.min(Event.at).label("first"))
             .where(*_clicks_of(broadcast), Event.user_id.is_not(None))
             .group_by(Event.user_id).subquery("c"))
    later = Event.__table__.alias("later")
    if session.get_bind().dialect.name == "postgresql":
        until: Any = first.c.first + literal(timedelta(days=days), Interval())
    else:
        until = func.datetime(first.c.first, text(f"'+{int(days)} days'"))
    converted_where = exists().where(
        later.c.user_id == first.c.user_id, later.c.at >= first.c.first, later.c.at < until,
        *[_on(later, t) for t in target])
    row = (await session.execute(
        select(func.count(), func.count().filter(converted_where)).select_from(first)
    )).one()
    return Conversion(int(row[0]), int(row[1]))


def _on(table: Any, condition: Any) -> Any:
    """``condition`` (written against Event) against the alias ``table``."""
    return ClauseAdapter(table).traverse(condition)

