"""The conversation with a user, both ways: what they wrote, what the bot answered, what
operators wrote, and the broadcasts they received.

* Incoming messages are written by the touch batch with their events (``NewEvent.message``).
* Outgoing replies go through :class:`MessageLog`: queued by the bot's request middleware
  after Telegram accepted them, written in batches (one statement each) off the reply path.
* Operator messages (console live chat, API): :func:`record_outgoing` in the caller's
  transaction, with a ``message.sent`` event naming the operator.
* Broadcasts received are read from the deliveries (no copy per recipient).

:func:`conversation` reads it newest first, cursor-paginated.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, false, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.types import utcnow
from relove.errors import InvalidInput
from relove.events.catalog import MESSAGE_SENT, EventSource, check_source
from relove.events.models import Message
from relove.events.record import MESSAGE_MAX_CHARS, Executor, NewEvent, NewMessage, record_many

log = logging.getLogger(__name__)
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


# -- writing -----------------------------------------------------------------------------------
async def record_outgoing(
    executor: Executor,
    user_id: int,
    text: str | None,
    *,
    message_id: int | None = None,
    kind: str = "operator",
    source: EventSource | str = EventSource.console,
    actor: str | None = None,
) -> None:
    """An operator's message to a user, in the caller's transaction: the conversation row and a
    ``message.sent`` event (``message_id``, ``kind``) naming the operator."""
    src = check_source(source).value
    await record_many(
        executor,
        [NewEvent(user_id, MESSAGE_SENT, {"message_id": message_id, "kind": kind},
                  message=NewMessage(kind, text, message_id, direction="out"))],
        source=src,
        actor=actor,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Out:
    user_id: int
    kind: str
    text: str | None
    message_id: int | None
    at: datetime


class MessageLog:
    """Outgoing messages, written in batches off the reply path (one ``INSERT … SELECT`` from a
    bound JSON array per batch). At most ``max_queue`` wait; past that the oldest are dropped
    with a warning rather than growing without bound while the database is away."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        flush_every: float = 0.5,
        max_batch: int = 500,
        max_queue: int = 10_000,
    ) -> None:
        self.engine = engine
        self.flush_every = flush_every
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.dropped = 0
        self._queue: list[_Out] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._sqlite = engine.dialect.name == "sqlite"

    def add(self, user_id: int, text: str | None, *, message_id: int | None,
            kind: str = "reply") -> None:  # fmt: skip
        if len(self._queue) >= self.max_queue:
            self._queue.pop(0)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("conversation log: %s outgoing messages dropped", self.dropped)
        self._queue.append(_Out(user_id, kind, text, message_id, utcnow()))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.flush_every)
        await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far."""
        async with self._lock:
            while self._queue:
                batch = self._queue[: self.max_batch]
                try:
                    await self._write(batch)
                except Exception as e:
                    log.warning("conversation log: %s messages not written yet: %s", len(batch), e)
                    return
                del self._queue[: len(batch)]

    async def _write(self, batch: list[_Out]) -> None:
        def when(at: datetime) -> str:
            at = at.astimezone(UTC)
            return at.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else at.isoformat()

        rows = [[o.user_id, when(o.at), o.kind,
                 o.text[:MESSAGE_MAX_CHARS] if o.text else o.text, o.message_id]
                for o in batch]  # fmt: skip
        payload = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
        if self._sqlite:
            sql = (
                "INSERT INTO messages (user_id, at, direction, kind, text, message_id, source) "
                "SELECT value ->> '$[0]', value ->> '$[1]', 'out', value ->> '$[2]', "
                "value ->> '$[3]', value ->> '$[4]', 'bot' FROM json_each(:rows)"
            )
        else:
            sql = (
                "INSERT INTO messages (user_id, at, direction, kind, text, message_id, source) "
                "SELECT CAST(e ->> 0 AS bigint), CAST(e ->> 1 AS timestamptz), 'out', e ->> 2, "
                "e ->> 3, CAST(e ->> 4 AS bigint), 'bot' "
                "FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS e"
            )
        async with self.engine.begin() as conn:
            await conn.execute(text(sql), {"rows": payload})

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.flush()


# -- reading -----------------------------------------------------------------------------------
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
    from relove.broadcasts.models import Broadcast, Delivery

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
