"""Touch: every update refreshes its user in one atomic upsert, grouped per flush.

Concurrent touches (aiogram handles updates as concurrent tasks) are queued and written by a
single flusher as ONE ``INSERT … ON CONFLICT (id) DO UPDATE … RETURNING`` per batch: identity
fields and ``last_seen_at`` are replaced, the ``context`` patch is merged in SQL (``||`` on
PostgreSQL, ``json_patch`` on SQLite), so nothing is read and rewritten in Python. Batches are
written one after another, so a user's later update is never overtaken by an earlier one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import User

log = logging.getLogger(__name__)

_table = User.__table__
_COLUMNS = [c for c in _table.columns]


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

    def params(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "is_active": True if self.is_active is None else self.is_active,
            "gender": "unknown",
            "context": {} if self.last_message is None else {"last_message": self.last_message},
            "markers": {},
            "created_at": self.seen_at,
            "updated_at": self.seen_at,
            "last_seen_at": self.seen_at,
        }


def build_upsert(dialect: str, *, sets_active: bool) -> Insert:
    """The touch statement for one dialect; ``sets_active`` also writes ``is_active``."""
    if dialect == "postgresql":
        stmt = pg_insert(_table)
        merged_context = _table.c.context.op("||")(stmt.excluded.context)
    else:
        stmt = sqlite_insert(_table)
        merged_context = func.json_patch(_table.c.context, stmt.excluded.context)
    updates: dict[str, Any] = {
        "username": stmt.excluded.username,
        "first_name": stmt.excluded.first_name,
        "last_name": stmt.excluded.last_name,
        "last_seen_at": stmt.excluded.last_seen_at,
        "updated_at": stmt.excluded.updated_at,
        "context": merged_context,
    }
    if sets_active:
        updates["is_active"] = stmt.excluded.is_active
    return stmt.on_conflict_do_update(index_elements=[_table.c.id], set_=updates).returning(
        *_COLUMNS
    )


class TouchWriter:
    """Queues touches and writes them in batches, one statement per batch."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        dialect = engine.dialect.name
        self._stmt = build_upsert(dialect, sets_active=False)
        self._stmt_active = build_upsert(dialect, sets_active=True)
        self._queue: list[tuple[Touch, asyncio.Future[User]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def touch(self, touch: Touch) -> User:
        """Create or refresh the user; returns the fresh row as a detached ``User``."""
        future: asyncio.Future[User] = asyncio.get_running_loop().create_future()
        self._queue.append((touch, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        """Wait until every queued touch is written."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._write(batch)
        finally:
            self._flusher = None

    async def _write(self, batch: list[tuple[Touch, asyncio.Future[User]]]) -> None:
        merged: dict[int, Touch] = {}
        waiters: dict[int, list[asyncio.Future[User]]] = {}
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

    async def _execute(self, touches: list[Touch]) -> dict[int, User]:
        plain = [t.params() for t in touches if t.is_active is None]
        active = [t.params() for t in touches if t.is_active is not None]
        users: dict[int, User] = {}
        async with self._engine.begin() as conn:
            for stmt, params in ((self._stmt, plain), (self._stmt_active, active)):
                if not params:
                    continue
                result = await conn.execute(stmt, params)
                for row in result:
                    users[row.id] = User(**row._asdict())
        return users
