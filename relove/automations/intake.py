"""Triggers: read ``events`` by a durable cursor and enter users into automations.

One transaction per batch: the cursor row is locked (PostgreSQL ``FOR UPDATE``, SQLite's
``BEGIN IMMEDIATE``), the events after it are read in id order, the users they are about enter
every automation they trigger (``INSERT … SELECT`` with the ``when`` condition compiled by the
segment compiler and the reentry rule as ``NOT EXISTS``), ``automation.started`` is recorded
for each, and the cursor moves — all committed together, so an event is acted on exactly once,
and an event whose transaction rolled back was never visible, hence never acted on.

**The commit-order gap (PostgreSQL).** Ids come from a sequence when a row is inserted, but
transactions commit in their own order: a reader can see event 105 committed while 103 is still
in flight. Moving the cursor past 105 would lose 103 for good. So the intake stops at the first
hole in the ids and waits for it: a hole still there ``RELOVE_AUTOMATIONS_EVENT_LAG_SECONDS``
(default 2 s) after it was first seen is taken for what it almost always is, an id consumed by
a rolled-back transaction or by ``ON CONFLICT DO NOTHING`` (a deduplicated event), and passed.
Only a transaction that stays open longer than the lag after writing an event can be missed;
event writers are short unit-of-work transactions (docs/automations.md). The lag is measured
on the monotonic clock from when the hole was first seen, not from the events' ``at`` (a
writer may back-date ``at``). SQLite has one writer at a time and hands out rowids in commit
order: no hole there can be a transaction in flight, so it never waits.

On its first run the cursor starts at the end of the history: deploying a welcome automation
does not greet everyone who ever joined.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    case,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from relove.automations.definition import AutomationFile
from relove.automations.entry import enter
from relove.automations.models import AutomationCursor
from relove.automations.triggers import MEMBERSHIP_EVENTS, take_enters
from relove.db.uow import begin_write
from relove.events.models import Event

log = logging.getLogger(__name__)

CURSOR = "events"


class Intake:
    """Reads events after the cursor and enters users; :meth:`run_once` is one batch."""

    def __init__(self, *, lag: float = 2.0, batch: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.lag = lag
        self.batch = batch
        self.monotonic = monotonic
        #: first id of a hole → when it was first seen
        self._holes: dict[int, float] = {}

    async def run_once(
        self, session: AsyncSession, automations: AutomationFile, paused: set[str],
        now: datetime,
    ) -> tuple[int, int]:
        """One batch in the session's transaction (commits it): (events read, runs started)."""
        await begin_write(session)
        pg = session.get_bind().dialect.name == "postgresql"
        cursor = await self._lock_cursor(session, pg, now)
        if cursor is None:
            await session.commit()
            return 0, 0
        # Every id is read (holes are found by them); names, users and props only of events
        # that trigger something, props only where a trigger filters on them. Core rows on the
        # session's connection: no ORM work per row.
        e = Event.__table__
        wanted = sorted(automations.events | self._membership(automations))
        with_props = sorted({a.event for a in automations.automations
                             if a.event and (a.props or a.trigger.where)})  # fmt: skip
        conn = await session.connection()
        rows = (await conn.execute(
            select(e.c.id, case((e.c.name.in_(wanted), e.c.user_id)).label("user_id"),
                   case((e.c.name.in_(wanted), e.c.name)).label("name"),
                   case((e.c.name.in_(with_props), e.c.props)).label("props"))
            .where(e.c.id > cursor).order_by(e.c.id).limit(self.batch)
        )).all()  # fmt: skip
        accepted = self._accept(rows, cursor, pg)
        if not accepted:
            await session.commit()
            return 0, 0
        started = await self._enter(session, accepted, automations, paused, now)
        await session.execute(
            AutomationCursor.__table__.update().where(AutomationCursor.name == CURSOR)
            .values(last_id=accepted[-1].id, updated_at=now))
        await session.commit()
        return len(accepted), started

    async def _lock_cursor(self, session: AsyncSession, pg: bool, now: datetime) -> int | None:
        """The cursor (locked); None when it was just created at the end of the history."""
        stmt = select(AutomationCursor.last_id).where(AutomationCursor.name == CURSOR)
        last = (await session.execute(stmt.with_for_update() if pg else stmt)).scalar()
        if last is not None:
            return int(last)
        top = (await session.execute(select(func.max(Event.id)))).scalar() or 0
        if pg:  # ids handed out but not (yet) visible are history too: no hole to wait for
            handed = (await session.execute(text(
                "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                "FROM events_id_seq"))).scalar()  # fmt: skip
            top = max(int(top), int(handed or 0))
        values = {"name": CURSOR, "last_id": top, "updated_at": now}
        if pg:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            await session.execute(pg_insert(AutomationCursor).values(values)
                                  .on_conflict_do_nothing())  # fmt: skip
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            await session.execute(sqlite_insert(AutomationCursor).values(values)
                                  .on_conflict_do_nothing())  # fmt: skip
        log.info("automations: reading events after id %s (the end of the history)", top)
        return None

    def _accept(self, rows: Sequence[Any], cursor: int, pg: bool) -> list[Any]:
        """The rows up to the first hole still within the lag (PostgreSQL only)."""
        if not pg:
            return list(rows)
        accepted: list[Any] = []
        expected = cursor + 1
        clock = self.monotonic()
        for row in rows:
            if row.id != expected:
                seen = self._holes.setdefault(expected, clock)
                if clock - seen < self.lag:
                    break
                self._holes.pop(expected, None)
            accepted.append(row)
            expected = row.id + 1
        if len(self._holes) > 1000:  # holes passed by other means (never more than a few)
            self._holes.clear()
        return accepted

    async def _enter(
        self, session: AsyncSession, rows: Sequence[Any], automations: AutomationFile,
        paused: set[str], now: datetime,
    ) -> int:
        by_automation: dict[str, dict[int, int]] = defaultdict(dict)
        wanted = automations.events
        changed: dict[int, int] = {}  # user id → an event that may change their membership
        if self._membership(automations):
            for row in rows:
                if row.user_id is not None and row.name in MEMBERSHIP_EVENTS:
                    changed.setdefault(int(row.user_id), int(row.id))
        wheres = {a.id: a.props_filter(now) for a in automations.of_kind("event")}
        for row in rows:
            if row.user_id is None or row.name not in wanted:
                continue
            for auto in automations.triggered_by(row.name):
                if auto.id in paused or not auto.first:
                    continue
                if not auto.matches_props(_props_of(row.props), wheres[auto.id]):
                    continue
                by_automation[auto.id].setdefault(int(row.user_id), int(row.id))
        total = 0
        for automation_id, users in by_automation.items():
            found = automations.get(automation_id)
            assert found is not None
            total += await enter(session, found, users, now)
        return total + await take_enters(session, automations, paused, changed, now)

    @staticmethod
    def _membership(automations: AutomationFile) -> frozenset[str]:
        """The events to read for enters triggers (none without one)."""
        return MEMBERSHIP_EVENTS if automations.of_kind("enters") else frozenset()


def _props_of(value: Any) -> Mapping[str, Any] | None:
    """An event's props as read (SQLite's JSON may come back as text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, Mapping) else None
