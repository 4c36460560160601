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
    BigInteger,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from relove.automations.definition import Automation, AutomationFile
from relove.automations.models import ACTIVE, AutomationCursor, AutomationRun, RunStatus
from relove.db.models import User
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.events import EventSource, NewEvent, record_many
from relove.events.catalog import AUTOMATION_STARTED
from relove.events.models import Event
from relove.ops import metrics
from relove.segments.service import resolve_filter

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
        wanted = sorted(automations.events)
        with_props = sorted({a.event for a in automations.automations if a.props})
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
        for row in rows:
            if row.user_id is None or row.name not in wanted:
                continue
            for auto in automations.triggered_by(row.name):
                if auto.id in paused or not auto.first or not auto.matches_props(row.props):
                    continue
                by_automation[auto.id].setdefault(int(row.user_id), int(row.id))
        total = 0
        for automation_id, users in by_automation.items():
            found = automations.get(automation_id)
            assert found is not None
            total += await enter(session, found, users, now)
        return total


async def enter(
    session: AsyncSession, auto: Automation, users: Mapping[int, int], now: datetime
) -> int:
    """Start runs of ``auto`` for those users (user id → triggering event id) who pass its
    ``when`` and reentry rule and are active; records ``automation.started``; no commit."""
    if not users:
        return 0
    u, r = User.__table__, AutomationRun.__table__
    earlier = select(literal(1)).select_from(r).where(
        r.c.automation_id == auto.id, r.c.user_id == u.c.id)
    reentry = auto.reentry
    if reentry.mode == "once":
        blocked = exists(earlier)
    elif reentry.mode == "cooldown":
        assert reentry.cooldown is not None
        blocked = exists(earlier.where(
            (r.c.status.in_(ACTIVE)) | (r.c.started_at > now - reentry.cooldown)))
    else:
        blocked = exists(earlier.where(r.c.status.in_(ACTIVE)))
    conditions = [u.c.is_active, ~blocked]
    if auto.when:
        conditions.append(await resolve_filter(session, auto.when, now=now))
    ids = sorted(users)
    inserted: list[int] = []
    pg = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL takes the ids as ONE array parameter; SQLite as IN lists of bounded size.
    size = len(ids) if pg else 1000
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        among = (u.c.id == any_(bindparam("ids", chunk, type_=ARRAY(BigInteger))) if pg
                 else u.c.id.in_(chunk))  # fmt: skip
        event_of = select(
            u.c.id, literal(auto.id).label("automation_id"),
            literal(auto.first).label("step"), literal(RunStatus.waiting.value).label("status"),
            literal(now, r.c.due_at.type).label("due_at"),
            literal(now, r.c.started_at.type).label("started_at"),
            literal(now, r.c.updated_at.type).label("updated_at"),
        ).where(among, and_(*conditions))
        stmt = insert(r).from_select(
            ["user_id", "automation_id", "step", "status", "due_at", "started_at", "updated_at"],
            event_of,
        ).returning(r.c.user_id)
        if pg:  # the runs and their automation.started events in ONE statement
            inserted += await _enter_with_events(session, stmt, auto, users)
            continue
        inserted += [row[0] for row in (await session.execute(stmt)).all()]
    if inserted and not pg:
        await record_many(session, [
            NewEvent(uid, AUTOMATION_STARTED,
                     {"automation": auto.id, "event_id": users[uid]})
            for uid in inserted
        ], source=EventSource.automation, actor=auto.id, check=False)
    if inserted:
        metrics.AUTOMATION_ENTERED.labels(auto.id).inc(len(inserted))
    return len(inserted)


async def _enter_with_events(session: AsyncSession, runs_insert: Any, auto: Automation,
                             users: Mapping[int, int]) -> list[int]:  # fmt: skip
    """PostgreSQL: ``WITH entered AS (INSERT INTO automation_runs … RETURNING user_id)
    INSERT INTO events … SELECT … FROM entered`` — the events' props built in SQL from a JSON
    map of user id → triggering event id."""
    e = Event.__table__
    entered = runs_insert.cte("entered")
    event_ids = cast(bindparam("event_ids", json.dumps({str(k): v for k, v in users.items()}),
                               type_=Text), JSONB)  # fmt: skip
    props = func.jsonb_build_object(
        literal("automation"), literal(auto.id),
        literal("event_id"), cast(event_ids.op("->>")(cast(entered.c.user_id, Text)), BigInteger))
    rows = select(entered.c.user_id, literal(AUTOMATION_STARTED), props,
                  literal(EventSource.automation.value), literal(auto.id),
                  literal(utcnow(), e.c.at.type))  # fmt: skip
    stmt = insert(e).from_select(["user_id", "name", "props", "source", "actor", "at"], rows)
    result = await session.execute(stmt.returning(e.c.user_id))
    return [row[0] for row in result.all()]
