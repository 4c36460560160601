"""A user's conversation read back, newest first: messages both ways (``messages``, written by
:mod:`relove.events.conversation`) and the broadcasts they received (read from the deliveries,
no copy per recipient). Lives beside the deliveries it joins, so the history room never
imports broadcasts."""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, or_, select, true

from relove.broadcasts.models import Broadcast, Delivery
from relove.errors import InvalidInput
from relove.events.catalog import EventSource
from relove.events.models import Message
from relove.events.record import Executor

M = Message.__table__
MAX_LIMIT = 500


@dataclass(frozen=True)
class ConversationItem:
    at: datetime
    direction: str  # in | out
    kind: str  # text, command, button, photo … (in); reply, operator, broadcast (out)
    text: str | None
    message_id: int | None
    source: str
    actor: str | None
    broadcast_id: int | None = None
    broadcast_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True)
class ConversationPage:
    items: list[ConversationItem]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [i.to_dict() for i in self.items], "next_cursor": self.next_cursor}




def _encode(at: datetime, rank: int, row_id: int) -> str:
    raw = f"{at.isoformat()}|{rank}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, rank, row_id = raw.split("|")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, int(rank), int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"invalid cursor {cursor[:40]!r}") from None


def _before(at_col: Any, id_col: Any, rank: int, cursor: tuple[datetime, int, int]) -> Any:
    """(at, rank, id) < cursor, newest first: messages rank 0, deliveries rank 1."""
    c_at, c_rank, c_id = cursor
    same: Any = true() if rank < c_rank else (id_col < c_id if rank == c_rank else false())
    return and_(at_col <= c_at, or_(at_col < c_at, and_(at_col == c_at, same)))


async def conversation(
    executor: Executor, user_id: int, *, limit: int = 50, cursor: str | None = None
) -> ConversationPage:
    """The user's conversation, newest first: messages both ways and broadcasts received."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    after = _decode(cursor) if cursor else None
    m_where = [M.c.user_id == user_id]
    D, B = Delivery.__table__, Broadcast.__table__
    d_where = [D.c.user_id == user_id, D.c.status == "sent", D.c.sent_at.is_not(None)]
    if after is not None:
        m_where.append(_before(M.c.at, M.c.id, 0, after))
        d_where.append(_before(D.c.sent_at, D.c.id, 1, after))
    messages = await executor.execute(
        select(M).where(*m_where).order_by(M.c.at.desc(), M.c.id.desc()).limit(limit + 1)
    )
    deliveries = await executor.execute(
        select(D.c.id, D.c.sent_at, D.c.message_id, B.c.id.label("broadcast_id"), B.c.name,
               B.c.text)
        .select_from(D.join(B, B.c.id == D.c.broadcast_id))
        .where(*d_where)
        .order_by(D.c.sent_at.desc(), D.c.id.desc())
        .limit(limit + 1)
    )  # fmt: skip
    keyed: list[tuple[tuple[datetime, int, int], ConversationItem]] = []
    for r in messages.all():
        keyed.append(((r.at, 0, r.id), ConversationItem(
            r.at, r.direction, r.kind, r.text, r.message_id, r.source, r.actor)))
    for r in deliveries.all():
        keyed.append(((r.sent_at, 1, r.id), ConversationItem(
            r.sent_at, "out", "broadcast", r.text, r.message_id, EventSource.broadcast.value,
            None, r.broadcast_id, r.name)))
    keyed.sort(key=lambda k: k[0], reverse=True)
    page = keyed[:limit]
    next_cursor = _encode(*page[-1][0]) if len(keyed) > limit else None
    return ConversationPage([item for _, item in page], next_cursor)
