"""The dispatcher: reads ``events`` past a durable cursor and writes one delivery per matching
endpoint, in ONE transaction with the cursor's move — so an event is queued exactly once, an
event of a rolled-back transaction (never visible) is never queued, and a committed one always is.

Ids versus commit order. Ids come from a sequence when a row is inserted, not when its
transaction commits, so on PostgreSQL id 101 can be visible while 100 still belongs to a running
transaction (or to one that rolled back: a hole for ever). The cursor therefore only moves over a
contiguous run of ids. A hole stops it until the hole is known to be dead:

* SQLite has one writer at a time: when id N is visible, every transaction that took a smaller
  id has ended, so a hole below a visible id is dead at once.
* PostgreSQL: a hole's transaction took its id before the visible id after it, so it was already
  running when the hole was first seen. Half a second later (it holds its transaction id by
  then) the dispatcher notes the transactions of this database that hold an id
  (``pg_stat_activity.backend_xid``); once all of them have ended, the hole is dead. (The
  cluster-wide ``pg_snapshot_xmin`` would do too, but any long transaction in another database
  of the same server would then hold webhooks back.) A transaction left open for
  ``RELOVE_WEBHOOKS_GAP_MAX_SECONDS`` (default 5 min, e.g. a forgotten ``BEGIN`` in psql)
  stops waiting: the hole is given up with a warning, since holding every webhook for it
  would be worse. The role the worker connects with must see the sessions of the roles that
  write (the same role, or ``pg_read_all_stats``).

Several workers may run a dispatcher: the cursor row is locked (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the write lock on SQLite), so one dispatches at a time and the others send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from relove.db.engine import create_session_factory
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.errors import FilterError
from relove.events.models import Event
from relove.webhooks import service
from relove.webhooks.models import DeliveryStatus, WebhookCursor, WebhookEndpoint

log = logging.getLogger(__name__)

#: seconds after a hole is first seen before its snapshot mark is taken (PostgreSQL)
GAP_GRACE = 0.5


@dataclass
class _Gap:
    seen: float
    #: the writing transactions of the database half a second after the hole was seen
    mark: frozenset[tuple[int, str]] | None = None


@dataclass
class DispatchStats:
    """Counters for metrics (plain attributes a collector can read)."""

    events: int = 0  #: events the cursor passed
    deliveries: int = 0  #: delivery rows created
    gaps_skipped: int = 0  #: holes given up after the maximum wait
    cursor: int = 0


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch: int = 1000,
        gap_max_seconds: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.sessions = create_session_factory(engine)
        self.batch = batch
        self.gap_max = gap_max_seconds
        self.clock = clock
        self.pg = engine.dialect.name == "postgresql"
        self._gaps: dict[int, _Gap] = {}
        self.stats = DispatchStats()

    async def step(self) -> int:
        """Dispatch one batch; returns how many events the cursor passed."""
        async with self.sessions() as session:
            if not self.pg:
                await begin_write(session)  # SQLite: the write lock first (one dispatcher)
            cursor = await self._lock_cursor(session)
            if cursor is None:
                return 0  # another dispatcher holds it
            endpoints = list((await session.execute(
                select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
            )).scalars())
            if not endpoints:
                # Nothing listens: new endpoints start after the newest event anyway.
                last = (await session.execute(select(func.max(Event.id)))).scalar_one() or 0
                if last > cursor:
                    await self._move(session, last)
                    await session.commit()
                    self.stats.events += last - cursor
                return 0
            rows = list(await session.execute(
                select(Event.id, Event.user_id, Event.name, Event.props, Event.source,
                       Event.actor, Event.at)
                .where(Event.id > cursor).order_by(Event.id).limit(self.batch)
            ))
            taken: list[Any] = []
            expected = cursor + 1
            active: frozenset[tuple[int, str]] | None = None
            for r in rows:
                if r.id != expected:
                    if self.pg and active is None:
                        active = await self._writers(session)
                    if not self._gap_dead(expected, active):
                        break
                taken.append(r)
                expected = r.id + 1
            if not taken:
                return 0
            created = await self._fan_out(session, taken, endpoints)
            new_cursor = taken[-1].id
            await self._move(session, new_cursor)
            await session.commit()
        for start in [g for g in self._gaps if g <= new_cursor]:
            del self._gaps[start]
        self.stats.events += len(taken)
        self.stats.deliveries += created
        self.stats.cursor = new_cursor
        return len(taken)

    # -- the cursor --------------------------------------------------------------------------
    async def _lock_cursor(self, session: AsyncSession) -> int | None:
        stmt = select(WebhookCursor.last_event_id).where(WebhookCursor.id == 1)
        if self.pg:
            stmt = stmt.with_for_update(skip_locked=True)
        found = (await session.execute(stmt)).scalar_one_or_none()
        if found is not None:
            return int(found)
        start = (await session.execute(
            select(func.min(WebhookEndpoint.from_event_id))
        )).scalar_one()
        if start is None:
            start = (await session.execute(select(func.max(Event.id)))).scalar_one() or 0
        table = WebhookCursor.__table__
        if self.pg:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            await session.execute(pg_insert(table).values(
                id=1, last_event_id=int(start), updated_at=utcnow()
            ).on_conflict_do_nothing())
        else:
            await session.execute(table.insert().values(
                id=1, last_event_id=int(start), updated_at=utcnow()
            ))
        found = (await session.execute(stmt)).scalar_one_or_none()
        return None if found is None else int(found)

    async def _move(self, session: AsyncSession, to: int) -> None:
        await session.execute(
            update(WebhookCursor).where(WebhookCursor.id == 1)
            .values(last_event_id=to, updated_at=utcnow())
        )

    async def _writers(self, session: AsyncSession) -> frozenset[tuple[int, str]]:
        """The transactions of this database that hold a transaction id now (pid, xid)."""
        rows = await session.execute(text(
            "SELECT pid, CAST(backend_xid AS text) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_xid IS NOT NULL "
            "AND pid <> pg_backend_pid()"
        ))
        return frozenset((int(r[0]), str(r[1])) for r in rows)

    def _gap_dead(self, start: int, active: frozenset[tuple[int, str]] | None) -> bool:
        if active is None:
            return True  # SQLite: one writer at a time, a hole below a visible id is dead
        now = time.monotonic()
        gap = self._gaps.get(start)
        if gap is None:
            self._gaps[start] = _Gap(seen=now)
            return False
        if now - gap.seen >= self.gap_max:
            log.warning("webhooks: event id %s never committed after %.0fs; skipping it "
                        "(a transaction has been open that long)", start, now - gap.seen)
            self.stats.gaps_skipped += 1
            return True
        if gap.mark is None:
            if now - gap.seen >= GAP_GRACE:
                gap.mark = active
            return False
        return not (gap.mark & active)

    # -- fan-out -----------------------------------------------------------------------------
    async def _fan_out(
        self, session: AsyncSession, events: list[Any], endpoints: list[WebhookEndpoint]
    ) -> int:
        now = self.clock()
        user_ids = {r.user_id for r in events if r.user_id is not None}
        plans: list[tuple[WebhookEndpoint, list[Any]]] = []
        for ep in endpoints:
            chosen = [r for r in events
                      if r.id > ep.from_event_id and service.matches(ep.events, r.name)]
            if chosen and ep.filter:
                ids = {r.user_id for r in chosen if r.user_id is not None}
                try:
                    keep = await service.filter_users(session, ep.filter, ids)
                except FilterError as e:
                    log.warning("webhook endpoint %s: its filter no longer holds (%s); "
                                "events skipped", ep.id, e)
                    keep = set()
                chosen = [r for r in chosen if r.user_id in keep]
            if chosen:
                plans.append((ep, chosen))
        if not plans:
            return 0
        users = await service._users(session, user_ids)
        bodies: dict[int, str] = {}
        values: list[dict[str, Any]] = []
        for ep, chosen in plans:
            for r in chosen:
                body = bodies.get(r.id)
                if body is None:
                    body = bodies[r.id] = service.event_body(r, users.get(r.user_id))
                values.append({
                    "endpoint_id": ep.id, "event_id": r.id, "msg_id": service.msg_id_of(r.id),
                    "event_name": r.name, "body": body, "status": DeliveryStatus.pending.value,
                    "attempts": 0, "next_attempt_at": now, "created_at": now,
                })
        await session.execute(service.insert_deliveries(self.engine.dialect.name), values)
        return len(values)
