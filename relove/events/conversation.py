"""The conversation with a user, both ways: what they wrote, what the bot answered, what
operators wrote, and the broadcasts they received.

* Incoming messages are written by the touch batch with their events (``NewEvent.message``).
* Outgoing replies go through :class:`MessageLog`: queued by the bot's request middleware
  after Telegram accepted them, written in batches (one statement each) off the reply path.
* Operator messages (console live chat, API): :func:`record_outgoing` in the caller's
  transaction, with a ``message.sent`` event naming the operator.
* Broadcasts received are read from the deliveries (no copy per recipient).

:func:`relove.broadcasts.conversation.conversation` reads it back, newest first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.types import utcnow
from relove.events.catalog import MESSAGE_SENT, EventSource, check_source
from relove.events.models import Message
from relove.events.record import MESSAGE_MAX_CHARS, Executor, NewEvent, NewMessage, record_many

log = logging.getLogger(__name__)
M = Message.__table__


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
