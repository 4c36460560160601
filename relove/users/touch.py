"""Touch: every update refreshes its user in one atomic upsert, grouped per flush.

Concurrent touches (aiogram handles updates as concurrent tasks) are queued and written as ONE
``INSERT … ON CONFLICT (id) DO UPDATE … RETURNING`` per batch: identity fields and
``last_seen_at`` are replaced, the ``context`` patch is merged in SQL (``||`` on PostgreSQL,
``json_patch`` on SQLite), so nothing is read and rewritten in Python. The batch travels as one
bound JSON array unpacked by the database, so a batch costs one round trip and almost no
per-row work in Python.

Users are spread over lanes by id; a lane writes its batches one after another, so a user's
later update is never overtaken by an earlier one, while the lanes overlap the database's
latency.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import FrozenDocument, Gender, UserSnapshot
from relove.db.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)


class Touch:
    """What one update says about its user: ``[id, username, first_name, last_name,
    last_message, is_active]`` — also its form in the batch document (``is_active`` and
    ``last_message`` are ``None`` when the update says nothing about them)."""

    __slots__ = ("row",)

    def __init__(
        self,
        user_id: int,
        username: str | None,
        first_name: str | None,
        last_name: str | None,
        last_message: str | None = None,
        is_active: bool | None = None,
    ) -> None:
        self.row: list[Any] = [user_id, username, first_name, last_name, last_message, is_active]

    @property
    def user_id(self) -> int:
        return self.row[0]

    def merged_with(self, later: Touch) -> Touch:
        """A touch saying what this one and a later one of the same user say together."""
        row = [*later.row]
        if row[4] is None:
            row[4] = self.row[4]
        if row[5] is None:
            row[5] = self.row[5]
        touch = Touch.__new__(Touch)
        touch.row = row
        return touch


# JSON documents come back as text (parsed lazily by FrozenDocument); no per-row processing.
_RETURNING = (
    "users.id, users.username, users.first_name, users.last_name, users.is_active, "
    "users.gender, CAST(users.context AS TEXT), CAST(users.markers AS TEXT), "
    "users.created_at, users.updated_at, users.last_seen_at"
)

_UPDATE = """
ON CONFLICT (id) DO UPDATE SET
    username = excluded.username, first_name = excluded.first_name,
    last_name = excluded.last_name, last_seen_at = excluded.last_seen_at,
    updated_at = excluded.updated_at, context = {merge}{active}
RETURNING {returning}
"""

_PG_UPSERT = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, context, markers,
                   created_at, updated_at, last_seen_at)
SELECT CAST(e ->> 0 AS bigint), e ->> 1, e ->> 2, e ->> 3,
       COALESCE(CAST(e ->> 5 AS boolean), true), 'unknown',
       CASE WHEN jsonb_typeof(e -> 4) = 'string'
            THEN jsonb_build_object('last_message', e -> 4) ELSE '{{}}'::jsonb END,
       '{{}}'::jsonb, t.now, t.now, t.now
FROM (SELECT CAST(:now AS timestamptz) AS now) AS t,
     jsonb_array_elements(CAST(:batch AS jsonb)) AS e
"""

_SQLITE_UPSERT = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, context, markers,
                   created_at, updated_at, last_seen_at)
SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]',
       COALESCE(value ->> '$[5]', 1), 'unknown',
       CASE WHEN json_type(value, '$[4]') = 'text'
            THEN json_object('last_message', value ->> '$[4]') ELSE '{{}}' END,
       '{{}}', t.now, t.now, t.now
FROM (SELECT :now AS now) AS t, json_each(:batch)
WHERE true
"""


def build_upsert(dialect: str, *, sets_active: bool) -> TextClause:
    """The touch statement of a dialect; ``sets_active`` also writes ``is_active``."""
    if dialect == "postgresql":
        head, merge = _PG_UPSERT, "users.context || excluded.context"
    else:
        head, merge = _SQLITE_UPSERT, "json_patch(users.context, excluded.context)"
    active = ", is_active = excluded.is_active" if sets_active else ""
    sql = (head + _UPDATE).format(merge=merge, active=active, returning=_RETURNING)
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


def _sqlite_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _snapshot(row: Sequence[Any], sqlite: bool) -> UserSnapshot:
    """A snapshot from a raw driver row (the touch statement's RETURNING columns)."""
    created, updated, seen = row[8], row[9], row[10]
    if sqlite:
        created, updated, seen = _sqlite_time(created), _sqlite_time(updated), _sqlite_time(seen)
    return UserSnapshot(
        row[0],
        row[1],
        row[2],
        row[3],
        bool(row[4]),
        Gender(row[5]),
        FrozenDocument(row[6]),
        FrozenDocument(row[7]),
        created,
        updated,
        seen,
    )


class _Lane:
    """One queue and its flusher: the batches of a lane are written one after another."""

    __slots__ = ("queue", "flusher")

    def __init__(self) -> None:
        self.queue: list[tuple[Touch, asyncio.Future[UserSnapshot]]] = []
        self.flusher: asyncio.Task[None] | None = None


class TouchWriter:
    """Queues touches and writes them in batches, one statement per batch."""

    def __init__(
        self, engine: AsyncEngine, *, max_batch: int = 500, lanes: int | None = None
    ) -> None:
        dialect = self._dialect = engine.dialect.name
        # One statement per batch is atomic by itself: on PostgreSQL it runs in autocommit
        # mode (one round trip instead of BEGIN, statement, COMMIT). SQLite has one writer,
        # so one lane; PostgreSQL overlaps a few.
        if dialect == "sqlite":
            self._engine = engine
            lanes = lanes or 1
        else:
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            lanes = lanes or 4
        self._max_batch = max_batch
        self._lanes = [_Lane() for _ in range(lanes)]
        self._stmt = build_upsert(dialect, sets_active=False)
        self._stmt_active = build_upsert(dialect, sets_active=True)

    async def touch(self, touch: Touch) -> UserSnapshot:
        """Create or refresh the user; returns the fresh row as a read-only snapshot."""
        future: asyncio.Future[UserSnapshot] = asyncio.get_running_loop().create_future()
        lane = self._lanes[touch.row[0] % len(self._lanes)]
        lane.queue.append((touch, future))
        if lane.flusher is None:
            lane.flusher = asyncio.create_task(self._drain(lane))
        return await future

    async def close(self) -> None:
        """Wait until every queued touch is written."""
        for lane in self._lanes:
            while lane.flusher is not None:
                await asyncio.shield(lane.flusher)

    async def _drain(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                batch = lane.queue[: self._max_batch]
                del lane.queue[: self._max_batch]
                await self._write(batch)
        finally:
            lane.flusher = None

    async def _write(self, batch: list[tuple[Touch, asyncio.Future[UserSnapshot]]]) -> None:
        merged: dict[int, Touch] = {}
        waiters: dict[int, list[asyncio.Future[UserSnapshot]]] = {}
        for touch, future in batch:
            user_id = touch.row[0]
            known = merged.get(user_id)
            if known is None:
                merged[user_id] = touch
                waiters[user_id] = [future]
            else:
                merged[user_id] = known.merged_with(touch)
                waiters[user_id].append(future)
        try:
            users = await self._execute(list(merged.values()))
        except (IntegrityError, DataError):
            # One bad row (e.g. a context at its size limit) must not fail everyone's touch:
            # write them one by one.
            log.warning("touch of %d users failed; retrying one by one", len(merged))
            users = {}
            for touch in merged.values():
                try:
                    users.update(await self._execute([touch]))
                except Exception as e:
                    log.exception("touch of user %s failed", touch.user_id)
                    for future in waiters.pop(touch.user_id):
                        if not future.done():
                            future.set_exception(e)
        except Exception as e:
            # The database is unreachable or busy: retrying row by row would only multiply
            # the wait. Fail the batch at once; each update's handler sees the error.
            log.error("touch of %d users failed: %s", len(merged), e)
            for futures in waiters.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(e)
            return
        for user_id, futures in waiters.items():
            user = users.get(user_id)
            for future in futures:
                if future.done():
                    continue
                if user is None:
                    future.set_exception(RuntimeError(f"touch of user {user_id} returned no row"))
                else:
                    future.set_result(user)

    async def _execute(self, touches: list[Touch]) -> dict[int, UserSnapshot]:
        plain = [t.row for t in touches if t.row[5] is None]
        active = [t.row for t in touches if t.row[5] is not None]
        users: dict[int, UserSnapshot] = {}
        sqlite = self._dialect == "sqlite"
        now = utcnow()
        async with self._engine.connect() as conn:
            for stmt, rows in ((self._stmt, plain), (self._stmt_active, active)):
                if not rows:
                    continue
                payload = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
                result = await conn.execute(stmt, {"batch": payload, "now": now})
                for row in result:
                    users[row[0]] = _snapshot(row, sqlite)
            if sqlite:
                await conn.commit()
        return users
