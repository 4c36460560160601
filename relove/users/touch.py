"""Touch: every update refreshes its user in one atomic upsert, grouped per flush.

Concurrent touches (aiogram handles updates as concurrent tasks) are queued and written by a
single flusher as ONE ``INSERT … ON CONFLICT (id) DO UPDATE … RETURNING`` per batch: identity
fields and ``last_seen_at`` are replaced, the ``context`` patch is merged in SQL (``||`` on
PostgreSQL, ``json_patch`` on SQLite), so nothing is read and rewritten in Python. Batches are
written one after another, so a user's later update is never overtaken by an earlier one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import FrozenDocument, Gender, UserSnapshot

log = logging.getLogger(__name__)



@dataclass(slots=True)
class Touch:
    """What one update says about its user."""

    user_id: int
    username: str | None
    first_name: str | None
    last_name: str | None
    seen_at: datetime
    last_message: str | None = None
    is_active: bool | None = None

    def merge(self, later: Touch) -> None:
        """Fold a later touch of the same user into this one (the later one wins)."""
        self.username, self.first_name, self.last_name = (
            later.username,
            later.first_name,
            later.last_name,
        )
        self.seen_at = max(self.seen_at, later.seen_at)
        if later.last_message is not None:
            self.last_message = later.last_message
        if later.is_active is not None:
            self.is_active = later.is_active

    def as_json(self, dialect: str) -> dict[str, Any]:
        """This touch as one element of the batch document the upsert statement unpacks."""
        if dialect == "sqlite":
            # The exact text UTCDateTime stores on SQLite, so comparisons stay consistent.
            seen = self.seen_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        else:
            seen = self.seen_at.isoformat()
        return {
            "id": self.user_id,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "is_active": True if self.is_active is None else self.is_active,
            "context": {} if self.last_message is None else {"last_message": self.last_message},
            "seen_at": seen,
        }


# JSON documents come back as text (parsed lazily by FrozenDocument); no per-row processing.
_RETURNING = (
    "users.id, users.username, users.first_name, users.last_name, users.is_active, "
    "users.gender, CAST(users.context AS TEXT), CAST(users.markers AS TEXT), "
    "users.created_at, users.updated_at, users.last_seen_at"
)

_PG_UPSERT = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, context, markers,
                   created_at, updated_at, last_seen_at)
SELECT t.id, t.username, t.first_name, t.last_name, t.is_active, 'unknown', t.context, '{{}}',
       t.seen_at, t.seen_at, t.seen_at
FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS t(
    id bigint, username text, first_name text, last_name text, is_active boolean,
    context jsonb, seen_at timestamptz)
ON CONFLICT (id) DO UPDATE SET
    username = excluded.username, first_name = excluded.first_name,
    last_name = excluded.last_name, last_seen_at = excluded.last_seen_at,
    updated_at = excluded.updated_at, context = users.context || excluded.context{active}
RETURNING {returning}
"""

_SQLITE_UPSERT = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, context, markers,
                   created_at, updated_at, last_seen_at)
SELECT value ->> '$.id', value ->> '$.username', value ->> '$.first_name',
       value ->> '$.last_name', value ->> '$.is_active', 'unknown', value -> '$.context', '{{}}',
       value ->> '$.seen_at', value ->> '$.seen_at', value ->> '$.seen_at'
FROM json_each(:batch) WHERE true
ON CONFLICT (id) DO UPDATE SET
    username = excluded.username, first_name = excluded.first_name,
    last_name = excluded.last_name, last_seen_at = excluded.last_seen_at,
    updated_at = excluded.updated_at, context = json_patch(users.context, excluded.context){active}
RETURNING {returning}
"""


def build_upsert(dialect: str, *, sets_active: bool) -> TextClause:
    """The touch statement: the whole batch is ONE bound JSON document unpacked in SQL
    (``jsonb_to_recordset`` / ``json_each``), so a batch costs one round trip and almost no
    per-row work in Python. ``sets_active`` also writes ``is_active``."""
    template = _PG_UPSERT if dialect == "postgresql" else _SQLITE_UPSERT
    active = ", is_active = excluded.is_active" if sets_active else ""
    return text(template.format(active=active, returning=_RETURNING))


def _sqlite_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _snapshot(row: Sequence[Any], sqlite: bool) -> UserSnapshot:
    """A snapshot from a raw driver row (the touch statement's RETURNING columns)."""
    created, updated, seen = row[8], row[9], row[10]
    if sqlite:
        created, updated, seen = _sqlite_time(created), _sqlite_time(updated), _sqlite_time(seen)
    return UserSnapshot(
        id=row[0],
        username=row[1],
        first_name=row[2],
        last_name=row[3],
        is_active=bool(row[4]),
        gender=Gender(row[5]),
        context=FrozenDocument(row[6]),
        markers=FrozenDocument(row[7]),
        created_at=created,
        updated_at=updated,
        last_seen_at=seen,
    )


class _Lane:
    """One queue and its flusher: batches of a lane are written one after another."""

    __slots__ = ("queue", "flusher")

    def __init__(self) -> None:
        self.queue: list[tuple[Touch, asyncio.Future[UserSnapshot]]] = []
        self.flusher: asyncio.Task[None] | None = None


class TouchWriter:
    """Queues touches and writes them in batches, one statement per batch.

    Users are spread over ``lanes`` by id: each lane writes its batches one after another (so a
    user's later touch never overtakes an earlier one), while the lanes' batches are in flight
    at the same time, hiding the database's latency. SQLite has one writer, so one lane.
    """

    def __init__(
        self, engine: AsyncEngine, *, max_batch: int = 500, lanes: int | None = None
    ) -> None:
        self._engine = engine
        # One statement per batch is atomic by itself: on PostgreSQL it runs in autocommit
        # mode (one round trip instead of BEGIN, statement, COMMIT).
        self._writer = (
            engine if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._max_batch = max_batch
        dialect = self._dialect = engine.dialect.name
        if lanes is None:
            lanes = 1 if dialect == "sqlite" else 4
        self._lanes = [_Lane() for _ in range(lanes)]
        self._stmt = build_upsert(dialect, sets_active=False)
        self._stmt_active = build_upsert(dialect, sets_active=True)

    async def touch(self, touch: Touch) -> UserSnapshot:
        """Create or refresh the user; returns the fresh row as a read-only snapshot."""
        future: asyncio.Future[UserSnapshot] = asyncio.get_running_loop().create_future()
        lane = self._lanes[touch.user_id % len(self._lanes)]
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
            known = merged.get(touch.user_id)
            if known is None:
                # Copy: the caller's object stays as it was.
                merged[touch.user_id] = Touch(
                    touch.user_id,
                    touch.username,
                    touch.first_name,
                    touch.last_name,
                    touch.seen_at,
                    touch.last_message,
                    touch.is_active,
                )
                waiters[touch.user_id] = [future]
            else:
                known.merge(touch)
                waiters[touch.user_id].append(future)
        try:
            users = await self._execute(list(merged.values()))
        except Exception:
            # One bad row must not fail everyone's touch: write them one by one.
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
        plain = [t.as_json(self._dialect) for t in touches if t.is_active is None]
        active = [t.as_json(self._dialect) for t in touches if t.is_active is not None]
        users: dict[int, UserSnapshot] = {}
        sqlite = self._dialect == "sqlite"
        async with self._writer.connect() as conn:
            for stmt, batch in ((self._stmt, plain), (self._stmt_active, active)):
                if not batch:
                    continue
                payload = json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
                result = await conn.execute(stmt, {"batch": payload})
                for row in result:
                    users[row[0]] = _snapshot(row, sqlite)
            if sqlite:
                await conn.commit()
        return users
