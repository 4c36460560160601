"""A broadcast's history: ``delivery.sent|blocked|failed|unknown`` per recipient, written with
the outcome itself, and ``broadcast.started|completed``.

Outcomes travel as one bound JSON array per batch. On PostgreSQL one statement updates the
deliveries still ``sending``/``unknown`` and inserts an event for each row it really updated
(``UPDATE … RETURNING`` feeding an ``INSERT``): a batch written twice (a retry after a lost
commit acknowledgement) updates nothing the second time and so records nothing twice. SQLite
inserts the events for the rows the update is about to change, then updates them, in one
transaction under its single write lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from relove.broadcasts.base import DeliveryResult
from relove.broadcasts.models import Delivery
from relove.db.types import UTCDateTime
from relove.events.catalog import BROADCAST_COMPLETED, BROADCAST_STARTED, EventSource
from relove.events.record import Executor, record

#: Statuses whose recording is an event (``delivery.<status>``).
_EVENT_STATUSES = "('sent', 'blocked', 'failed', 'unknown')"
ERROR_MAX_CHARS = 1000
IN_FLIGHT = "in flight when the previous worker stopped"


def outcomes_json(results: Sequence[DeliveryResult], *, sqlite: bool) -> str:
    def when(at: datetime | None) -> str | None:
        if at is None:
            return None
        at = at.astimezone(UTC)
        return at.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at.isoformat()

    rows = [
        [r.delivery_id, r.status.value, r.attempts, r.message_id,
         r.error[:ERROR_MAX_CHARS] if r.error else None, when(r.sent_at)]
        for r in results
    ]  # fmt: skip
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


_PG = f"""
WITH v AS (
    SELECT CAST(e ->> 0 AS bigint) AS id, e ->> 1 AS status, CAST(e ->> 2 AS integer) AS attempts,
           CAST(e ->> 3 AS bigint) AS message_id, e ->> 4 AS error,
           CAST(e ->> 5 AS timestamptz) AS sent_at
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS e
), u AS (
    UPDATE deliveries AS d
    SET status = v.status, attempts = v.attempts, message_id = v.message_id, error = v.error,
        sent_at = v.sent_at, updated_at = :now
    FROM v
    WHERE d.id = v.id AND d.status IN ('sending', 'unknown')
    RETURNING d.id, d.user_id, d.broadcast_id, d.status, d.message_id, d.error
)
INSERT INTO events (user_id, name, props, source, actor, at)
SELECT u.user_id, 'delivery.' || u.status,
       CASE WHEN u.status = 'sent'
            THEN jsonb_build_object('broadcast_id', u.broadcast_id, 'delivery_id', u.id,
                                    'message_id', u.message_id)
            ELSE jsonb_build_object('broadcast_id', u.broadcast_id, 'delivery_id', u.id,
                                    'error', u.error) END,
       'broadcast', NULL, :now
FROM u WHERE u.status IN {_EVENT_STATUSES}
"""

_SQLITE_ROWS = """(SELECT value ->> '$[0]' AS id, value ->> '$[1]' AS status,
        value ->> '$[2]' AS attempts, value ->> '$[3]' AS message_id, value ->> '$[4]' AS error,
        value ->> '$[5]' AS sent_at FROM json_each(:rows)) AS v"""

_SQLITE_EVENTS = f"""
INSERT INTO events (user_id, name, props, source, actor, at)
SELECT d.user_id, 'delivery.' || v.status,
       CASE WHEN v.status = 'sent'
            THEN json_object('broadcast_id', d.broadcast_id, 'delivery_id', d.id,
                             'message_id', v.message_id)
            ELSE json_object('broadcast_id', d.broadcast_id, 'delivery_id', d.id,
                             'error', v.error) END,
       'broadcast', NULL, :now
FROM deliveries AS d JOIN {_SQLITE_ROWS} ON d.id = v.id
WHERE d.status IN ('sending', 'unknown') AND v.status IN {_EVENT_STATUSES}
"""

_SQLITE_UPDATE = f"""
UPDATE deliveries
SET status = v.status, attempts = v.attempts, message_id = v.message_id, error = v.error,
    sent_at = v.sent_at, updated_at = :now
FROM {_SQLITE_ROWS}
WHERE deliveries.id = v.id AND deliveries.status IN ('sending', 'unknown')
"""


def outcome_statements(dialect: str) -> list[TextClause]:
    """The statements that write a batch of outcomes (``:rows``, ``:now``) with their events."""
    sqls = [_PG] if dialect == "postgresql" else [_SQLITE_EVENTS, _SQLITE_UPDATE]
    return [text(s).bindparams(bindparam("now", type_=UTCDateTime())) for s in sqls]


async def mark_in_flight_unknown(conn: AsyncConnection, broadcast_id: int, now: datetime) -> int:
    """``sending`` rows left by a worker that died become ``unknown`` (never resent), each with
    its ``delivery.unknown`` event. Returns how many."""
    params: dict[str, Any] = {"b": broadcast_id, "now": now, "error": IN_FLIGHT}
    keys = "'broadcast_id', broadcast_id, 'delivery_id', id, 'error', :error"
    props_pg, props_sqlite = f"jsonb_build_object({keys})", f"json_object({keys})"
    if conn.dialect.name == "postgresql":
        sqls = [
            "WITH u AS (UPDATE deliveries SET status = 'unknown', updated_at = :now, "
            "error = :error WHERE broadcast_id = :b AND status = 'sending' "
            "RETURNING id, user_id, broadcast_id) "
            "INSERT INTO events (user_id, name, props, source, actor, at) "
            f"SELECT user_id, 'delivery.unknown', {props_pg}, 'broadcast', NULL, :now FROM u"
        ]
    else:
        sqls = [
            "INSERT INTO events (user_id, name, props, source, actor, at) "
            f"SELECT user_id, 'delivery.unknown', {props_sqlite}, 'broadcast', NULL, :now "
            "FROM deliveries WHERE broadcast_id = :b AND status = 'sending'",
            "UPDATE deliveries SET status = 'unknown', updated_at = :now, error = :error "
            "WHERE broadcast_id = :b AND status = 'sending'",
        ]
    count = 0
    for sql in sqls:
        stmt = text(sql).bindparams(bindparam("now", type_=UTCDateTime()))
        count = (await conn.execute(stmt, params)).rowcount
    return count


async def delivery_counts(executor: Executor, broadcast_id: int) -> dict[str, int]:
    d = Delivery.__table__
    query = select(d.c.status, func.count()).where(d.c.broadcast_id == broadcast_id)
    rows = await executor.execute(query.group_by(d.c.status))
    return {str(s): int(n) for s, n in rows.all()}


async def broadcast_started(
    executor: Executor, broadcast_id: int, recipients: int, *, actor: str | None = None
) -> None:
    await record(executor, None, BROADCAST_STARTED,
                 {"broadcast_id": broadcast_id, "recipients": recipients},
                 source=EventSource.broadcast, actor=actor)  # fmt: skip


async def broadcast_completed(
    executor: Executor, broadcast_id: int, counts: dict[str, int], status: str
) -> None:
    await record(executor, None, BROADCAST_COMPLETED,
                 {"broadcast_id": broadcast_id, "status": status, "counts": counts},
                 source=EventSource.broadcast)  # fmt: skip
