"""The inbox's storage: every statement the webhook mode runs, on SQLite and PostgreSQL.

* :meth:`Inbox.record` — ``INSERT … ON CONFLICT (update_id) DO NOTHING`` in its own
  transaction: when it returns, the update is durable (a redelivery changes nothing).
* :meth:`Inbox.claim` — take lanes (users) that have unprocessed updates and no live lease,
  oldest first, with ONE ``INSERT … ON CONFLICT (lane) DO UPDATE … WHERE lease_until < now``
  (atomic on both databases: two instances never both win a lane), then read their updates in
  ``update_id`` order. A lane is owned by one instance at a time, so a user's updates are
  processed in order across all instances, while other lanes run elsewhere concurrently.
* A touch stamps its update's ``touched_at`` in its own commit (:data:`TOUCHED`), so a
  take-over knows exactly which updates already have their events.
* :meth:`Inbox.finish` — mark updates processed; a lane whose updates are all done either
  continues with what arrived meanwhile or is released.
* :meth:`Inbox.renew` keeps the leases of a live instance; a dead instance's lanes are claimed
  by the others once its leases ran out. :meth:`Inbox.release_all` on a clean stop.
* :meth:`Inbox.prune` deletes processed rows older than the dedup window.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relove.bot.inbox.models import InboxLane, InboxUpdate
from relove.db.types import utcnow
from relove.db.uow import WRITE_INTENT
from relove.users.touch import Stamp

U = InboxUpdate.__table__
L = InboxLane.__table__

#: The touch of an inbox update stamps its ``touched_at`` in the touch's own statement
#: (PostgreSQL) or transaction (SQLite): its events are written exactly once, even when the
#: process dies right after (:meth:`Ingest.put_page` ``stamped``; the factory's TouchWriter).
TOUCHED = Stamp(table=InboxUpdate.__tablename__, key="update_id", column="touched_at")


@dataclass(frozen=True)
class InboxRow:
    update_id: int
    lane: int
    payload: str
    touched: bool = False  #: a previous owner committed its touch before dying


def lane_of(update: dict[str, Any]) -> int:
    """The lane of a raw update: the user it comes from, else its chat, else 0.

    Mirrors what the pipeline keys its per-user order on (the event's ``from``, else its
    chat); read from the JSON directly so the endpoint does not build aiogram objects."""
    for key, body in update.items():
        if key == "update_id" or not isinstance(body, dict):
            continue
        for who in ("from", "user"):
            person = body.get(who)
            if isinstance(person, dict) and isinstance(person.get("id"), int):
                return int(person["id"])
        chat = body.get("chat")
        if not isinstance(chat, dict):
            message = body.get("message")
            chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        voter = body.get("voter_chat")
        if isinstance(voter, dict) and isinstance(voter.get("id"), int):
            return int(voter["id"])
    return 0


class Inbox:
    """The inbox seen by one instance (``owner``), holding leases of ``lease`` seconds."""

    def __init__(self, engine: AsyncEngine, owner: str, *, lease: float = 30.0) -> None:
        self.engine = engine
        self.owner = owner
        self.lease = timedelta(seconds=lease)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # -- receiving ------------------------------------------------------------------------------
    async def record(self, update_id: int, lane: int, payload: str) -> bool:
        """Store an update durably; False when it was already there (a redelivery)."""
        stmt = (
            self._insert(U)
            .values(update_id=update_id, lane=lane, payload=payload, received_at=utcnow())
            .on_conflict_do_nothing(index_elements=["update_id"])
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    # -- claiming -------------------------------------------------------------------------------
    async def claim(self, limit: int) -> list[InboxRow]:
        """Take up to ``limit`` free lanes (oldest update first); their updates in order."""
        now = utcnow()
        live = select(L.c.lane).where(L.c.lease_until >= now)
        candidates = (
            select(U.c.lane)
            .where(U.c.processed_at.is_(None), U.c.lane.not_in(live))
            .group_by(U.c.lane)
            .order_by(func.min(U.c.update_id))
            .limit(limit)
        )
        async with self.engine.connect() as conn:  # a read: SQLite takes no write lock
            lanes = [row[0] for row in await conn.execute(candidates)]
        if not lanes:
            return []
        async with self._writing() as conn:
            insert = self._insert(L).values(  # in lane order: instances lock rows alike
                [{"lane": lane, "owner": self.owner, "lease_until": now + self.lease}
                 for lane in sorted(lanes)]
            )  # fmt: skip
            take = insert.on_conflict_do_update(
                index_elements=["lane"],
                set_={"owner": insert.excluded.owner, "lease_until": insert.excluded.lease_until},
                where=L.c.lease_until < now,
            ).returning(L.c.lane)
            won = [row[0] for row in await conn.execute(take)]
            rows = await self._pending(conn, won)
            # Finished by their owner since we looked: nothing to do, give them back.
            empty = set(won) - {row.lane for row in rows}
            if empty:
                await conn.execute(
                    delete(L).where(L.c.lane.in_(empty), L.c.owner == self.owner)
                )
            return rows

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that writes after it reads (BEGIN IMMEDIATE on SQLite: see
        :mod:`relove.db.uow`)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_INTENT: True})
            async with conn.begin():
                yield conn

    async def _pending(self, conn: Any, lanes: Sequence[int]) -> list[InboxRow]:
        if not lanes:
            return []
        rows = await conn.execute(
            select(U.c.update_id, U.c.lane, U.c.payload, U.c.touched_at.is_not(None))
            .where(U.c.lane.in_(lanes), U.c.processed_at.is_(None))
            .order_by(U.c.update_id)
        )
        return [InboxRow(*row) for row in rows]

    # -- finishing ------------------------------------------------------------------------------
    async def finish(
        self, done: Sequence[tuple[int, str]], lanes: Iterable[int] = ()
    ) -> list[InboxRow]:
        """Mark ``done`` (update id, outcome) processed. Of ``lanes`` (whose claimed updates
        are all done), those with newer updates stay ours and their updates are returned; the
        others are released."""
        lanes = list(lanes)
        now = utcnow()
        async with self._writing() as conn:
            by_outcome: dict[str, list[int]] = {}
            for update_id, outcome in done:
                by_outcome.setdefault(outcome, []).append(update_id)
            for outcome, ids in by_outcome.items():
                await conn.execute(
                    update(U)
                    .where(U.c.update_id.in_(ids))
                    .values(processed_at=now, outcome=outcome)
                )
            if not lanes:
                return []
            more = await self._pending(conn, lanes)
            busy = {row.lane for row in more}
            idle = [lane for lane in lanes if lane not in busy]
            if busy:
                await conn.execute(
                    update(L)
                    .where(L.c.lane.in_(busy), L.c.owner == self.owner)
                    .values(lease_until=now + self.lease)
                )
            if idle:
                await conn.execute(
                    delete(L).where(L.c.lane.in_(idle), L.c.owner == self.owner)
                )
            return more

    async def renew(self) -> int:
        """Extend every lease this instance holds; how many it holds."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(L).where(L.c.owner == self.owner).values(lease_until=utcnow() + self.lease)
            )
        return int(result.rowcount)

    async def release_all(self) -> int:
        """Give every lane back (a clean stop: the others take them at once)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(L).where(L.c.owner == self.owner))
        return int(result.rowcount)

    # -- upkeep ---------------------------------------------------------------------------------
    async def prune(self, keep: timedelta) -> int:
        """Delete updates processed more than ``keep`` ago (the dedup window)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(U).where(and_(U.c.processed_at.is_not(None),
                                     U.c.processed_at < utcnow() - keep))  # fmt: skip
            )
        return int(result.rowcount)

    async def backlog(self) -> tuple[int, float]:
        """Unprocessed updates and the age in seconds of the oldest (0 when none)."""
        async with self.engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(U.c.received_at)).where(
                        U.c.processed_at.is_(None)
                    )
                )
            ).one()
        if not count or oldest is None:
            return 0, 0.0
        if isinstance(oldest, str):  # SQLite's min() bypasses the column type
            oldest = datetime.fromisoformat(oldest)
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(count), max(0.0, (utcnow() - oldest).total_seconds())


def payload_of(update: dict[str, Any]) -> str:
    return json.dumps(update, ensure_ascii=False, separators=(",", ":"))
