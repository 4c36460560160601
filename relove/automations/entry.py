"""Entering users into an automation: ONE ``INSERT … SELECT`` of runs for a set of users (ids,
or any filter), with their ``automation.started`` events; used by every kind of trigger."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from relove.automations.definition import Automation
from relove.automations.models import ACTIVE, AutomationRun, RunStatus
from relove.db.models import User
from relove.db.types import utcnow
from relove.events import EventSource, NewEvent, record_many
from relove.events.catalog import AUTOMATION_STARTED
from relove.events.models import Event
from relove.segments.service import resolve_filter


async def enter(
    session: AsyncSession, auto: Automation, users: Mapping[int, int], now: datetime
) -> int:
    """Start runs of ``auto`` for those users (user id → triggering event id) who pass its
    ``when`` and reentry rule and are active; records ``automation.started``; no commit."""
    if not users:
        return 0
    u = User.__table__
    ids = sorted(users)
    pg = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL takes the ids as ONE array parameter; SQLite as IN lists of bounded size.
    size = len(ids) if pg else 1000
    total = 0
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        among = (u.c.id == any_(bindparam("ids", chunk, type_=ARRAY(BigInteger))) if pg
                 else u.c.id.in_(chunk))  # fmt: skip
        total += len(await enter_where(session, auto, among, now, event_ids=users))
    return total


async def enter_where(
    session: AsyncSession, auto: Automation, among: ColumnElement[bool], now: datetime, *,
    event_ids: Mapping[int, int] | None = None, props: Mapping[str, Any] | None = None,
) -> list[int]:
    """Start runs of ``auto`` for the users ``among`` matches who pass its ``when`` and reentry
    rule and are active — ONE ``INSERT … SELECT`` (with their ``automation.started`` events in
    the same statement on PostgreSQL); the events' props are the automation, the triggering
    event's id (``event_ids``: user id → event id) and ``props``. The user ids; no commit."""
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
    conditions = [among, u.c.is_active, ~blocked]
    if auto.when:
        conditions.append(await resolve_filter(session, auto.when, now=now))
    rows = select(
        u.c.id, literal(auto.id).label("automation_id"),
        literal(auto.first).label("step"), literal(RunStatus.waiting.value).label("status"),
        literal(now, r.c.due_at.type).label("due_at"),
        literal(now, r.c.started_at.type).label("started_at"),
        literal(now, r.c.updated_at.type).label("updated_at"),
    ).where(and_(*conditions))
    stmt = insert(r).from_select(
        ["user_id", "automation_id", "step", "status", "due_at", "started_at", "updated_at"],
        rows,
    ).returning(r.c.user_id)
    if session.get_bind().dialect.name == "postgresql":
        # the runs and their automation.started events in ONE statement
        return await _enter_with_events(session, stmt, auto, event_ids, props)
    inserted = [row[0] for row in (await session.execute(stmt)).all()]
    if inserted:
        await record_many(session, [
            NewEvent(uid, AUTOMATION_STARTED, {
                "automation": auto.id, **({"event_id": event_ids[uid]} if event_ids else {}),
                **(props or {})})
            for uid in inserted
        ], source=EventSource.automation, actor=auto.id, check=False)
    return inserted


async def _enter_with_events(
    session: AsyncSession, runs_insert: Any, auto: Automation,
    event_ids: Mapping[int, int] | None, extra: Mapping[str, Any] | None,
) -> list[int]:
    """PostgreSQL: ``WITH entered AS (INSERT INTO automation_runs … RETURNING user_id)
    INSERT INTO events … SELECT … FROM entered JOIN unnest(:user_ids, :event_ids)`` — the
    events' props built in SQL. (The triggering event ids come as two arrays joined by hash,
    not a JSON map looked up per row: PostgreSQL re-reads such a map for every row, which made
    a batch of 10,000 cost seconds.)"""
    e = Event.__table__
    entered = runs_insert.cte("entered")
    pairs: list[Any] = [literal("automation"), literal(auto.id)]
    source: Any = entered
    if event_ids:
        uids = sorted(event_ids)
        m = func.unnest(bindparam("m_user_ids", uids, type_=ARRAY(BigInteger)),
                        bindparam("m_event_ids", [event_ids[u] for u in uids],
                                  type_=ARRAY(BigInteger))
                        ).table_valued("uid", "eid").render_derived(name="m")  # fmt: skip
        source = entered.join(m, m.c.uid == entered.c.user_id)
        pairs += [literal("event_id"), m.c.eid]
    props: Any = func.jsonb_build_object(*pairs)
    if extra:
        props = props.op("||")(cast(bindparam("extra", json.dumps(dict(extra)), type_=Text),
                                    JSONB))  # fmt: skip
    rows = select(entered.c.user_id, literal(AUTOMATION_STARTED), props,
                  literal(EventSource.automation.value), literal(auto.id),
                  literal(utcnow(), e.c.at.type)).select_from(source)  # fmt: skip
    stmt = insert(e).from_select(["user_id", "name", "props", "source", "actor", "at"], rows)
    result = await session.execute(stmt.returning(e.c.user_id))
    return [row[0] for row in result.all()]
