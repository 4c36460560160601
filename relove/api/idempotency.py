"""``Idempotency-Key``: the first response to a key is kept and replayed.

1. :func:`claim` (its own, committed transaction) inserts the key as ``running``. A key already
   there answers: a replay of its response (``done``), 409 while its first request is still in
   flight, 422 when it came with another request (method, path, query or body differ).
2. The route runs; :func:`finish` stores its response IN THE ROUTE'S TRANSACTION, so the change
   and the stored response commit together: a retry after a crash either finds the response or
   finds nothing done.
3. :func:`release` drops the claim of a request that changed nothing (it failed validation or
   died), so the client may retry with the same key.

A key outlives its request by ``RELOVE_API_IDEMPOTENCY_HOURS`` (24); a ``running`` key older
than ``RELOVE_API_IDEMPOTENCY_LOCK_SECONDS`` belongs to a dead request and may be taken over.
Keys are per token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from relove.api.models import IDEMPOTENCY_KEY_MAX, IdempotencyRecord
from relove.errors import Conflict, InvalidInput

T = IdempotencyRecord.__table__
RUNNING, DONE = "running", "done"
REPLAY_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Claim:
    token_id: int
    key: str


class Replay(Exception):  # noqa: N818 - control flow, not an error
    """The stored response of an earlier request with the same key."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        h.update(part)
        h.update(b"\n")
    h.update(body)
    return h.hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )
    return key


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    token_id: int,
    key: str,
    digest: str,
    *,
    now: datetime,
    ttl: timedelta,
    lock: timedelta,
) -> Claim:
    """Claim ``key`` for a request (see the module doc); raises :class:`Replay`,
    :class:`Conflict` or :class:`InvalidInput` when the key is taken."""
    check_key(key)
    fresh = {"token_id": token_id, "key": key, "request_hash": digest, "state": RUNNING,
             "status_code": None, "content_type": None, "body": None,
             "created_at": now, "expires_at": now + ttl}  # fmt: skip
    async with sessions.begin() as session:
        insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else (
            sqlite_insert)
        inserted = await session.execute(
            insert(T).values(fresh).on_conflict_do_nothing().returning(T.c.key)
        )
        if inserted.first() is not None:
            return Claim(token_id, key)
        # Taken: an expired key, or one whose request died, may be taken over (once).
        taken_over = await session.execute(
            update(T)
            .where(
                T.c.token_id == token_id,
                T.c.key == key,
                or_(T.c.expires_at <= now,
                    and_(T.c.state == RUNNING, T.c.created_at < now - lock)),
            )
            .values(fresh)
            .returning(T.c.key)
        )
        if taken_over.first() is not None:
            return Claim(token_id, key)
        row = (
            await session.execute(
                select(T.c.request_hash, T.c.state, T.c.status_code, T.c.content_type, T.c.body)
                .where(T.c.token_id == token_id, T.c.key == key)
            )
        ).first()
    if row is None:  # released between the insert and the read: the client may simply retry
        raise Conflict("a request with this Idempotency-Key just finished; retry")
    if row.request_hash != digest:
        raise InvalidInput(
            "this Idempotency-Key was used with a different request; use a new key"
        )
    if row.state == RUNNING:
        raise Conflict("a request with this Idempotency-Key is still in progress; retry later")
    raise Replay(
        Response(
            content=row.body or b"",
            status_code=row.status_code or 200,
            media_type=row.content_type,
            headers={REPLAY_HEADER: "true"},
        )
    )


async def finish(session: AsyncSession, c: Claim, response: Response) -> None:
    """Store the response of the claimed request in the request's own transaction."""
    body = getattr(response, "body", b"")
    await session.execute(
        update(T)
        .where(T.c.token_id == c.token_id, T.c.key == c.key)
        .values(
            state=DONE,
            status_code=response.status_code,
            content_type=response.headers.get("content-type"),
            body=bytes(body),
        )
    )


async def release(sessions: async_sessionmaker[AsyncSession], c: Claim) -> None:
    async with sessions.begin() as session:
        await session.execute(
            delete(T).where(T.c.token_id == c.token_id, T.c.key == c.key, T.c.state == RUNNING)
        )


async def prune(session: AsyncSession, *, now: datetime) -> int:
    """Delete expired keys; returns how many."""
    result = await session.execute(delete(T).where(T.c.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
