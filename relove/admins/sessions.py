"""Server-side sessions of the console.

The browser's cookie holds a random 256-bit token; the ``console_sessions`` row is keyed by its
SHA-256, so a copy of the table opens no session. A session ends at logout, after
``idle`` without a request, at its absolute ``lifetime``, or when its admin is removed. Every
request resolves the admin's role afresh (a demoted admin is demoted at once).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.admins.login import token_hash
from relove.admins.models import ConsoleSession, Role
from relove.admins.service import role_of
from relove.config import Settings
from relove.db.types import utcnow

#: last_seen_at is written at most this often (not on every request)
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Signed:
    """A valid session: who, with which role, and its CSRF token."""

    session_id: str
    admin_id: int
    role: Role
    csrf: str
    via: str


async def open_session(
    session: AsyncSession, admin_id: int, *, via: str, lifetime: timedelta,
    now: datetime | None = None,
) -> tuple[str, ConsoleSession]:
    """A new session; returns the cookie token (shown once) and the row."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(id=token_hash(token), admin_id=admin_id, csrf=secrets.token_urlsafe(32),
                         via=via, created_at=now, last_seen_at=now, expires_at=now + lifetime)
    session.add(row)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    await session.flush()
    return token, row


async def resolve_session(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, token: str | None, *,
    idle: timedelta, now: datetime | None = None,
) -> Signed | None:
    """The session behind a cookie token, or None (unknown, idle too long, expired, or its
    admin no longer an admin). Refreshes ``last_seen_at`` at most once a minute.

    It reads in one short transaction and writes (if at all) in another that begins with the
    write: on SQLite a transaction that reads and then writes fails at once when another
    connection committed in between."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    key = token_hash(token)
    async with sessions() as session:
        row = await session.scalar(select(ConsoleSession).where(ConsoleSession.id == key))
        role = None if row is None else await role_of(session, settings, row.admin_id)
    if row is None:
        return None
    if role is None or row.expires_at <= now or row.last_seen_at + idle <= now:
        async with sessions.begin() as session:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.id == key))
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        async with sessions.begin() as session:
            await session.execute(
                update(ConsoleSession).where(ConsoleSession.id == key).values(last_seen_at=now)
            )
    return Signed(row.id, row.admin_id, role, row.csrf, row.via)


async def close_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))
