"""Whole-user operations: look up, change gender or active state, delete — each change with its
event in the same transaction (see :mod:`relove.users.changes` for how old values are read)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import bindparam, delete, text
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from relove.db.models import Gender, User
from relove.db.types import UTCDateTime, utcnow
from relove.errors import InvalidInput, NotFound
from relove.events.catalog import (
    USER_BLOCKED,
    USER_DELETED,
    USER_GENDER_CHANGED,
    USER_UNBLOCKED,
    EventSource,
)
from relove.events.models import Event, Message
from relove.events.record import record
from relove.users.changes import origin
from relove.users.paths import check_user_id

Executor = AsyncSession | AsyncConnection


def _pg(executor: Executor) -> bool:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name == "postgresql"


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, check_user_id(user_id))
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def delete_user(
    session: AsyncSession,
    user_id: int,
    *,
    source: EventSource | str = EventSource.bot,
    actor: str | None = None,
) -> bool:
    """Forget a user: the row (rows that reference it go by ON DELETE CASCADE), its events and
    its conversation; one ``user.deleted`` event keeps only the id. False if there was none."""
    who = origin(source, actor)
    # DML answers a CursorResult (it has rowcount); Session.execute is typed as plain Result.
    result = cast(CursorResult[Any], await session.execute(delete(User).where(User.id == user_id)))
    if not result.rowcount:
        return False
    await session.execute(delete(Event).where(Event.user_id == user_id))
    await session.execute(delete(Message).where(Message.user_id == user_id))
    await record(session, user_id, USER_DELETED, source=who.source, actor=who.actor)
    return True


async def set_gender(
    executor: Executor,
    user_id: int,
    gender: Gender | str,
    *,
    only_if_unknown: bool = False,
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> bool:
    """Set the gender column (``only_if_unknown``: only where it is still ``unknown``); records
    ``user.gender_changed`` (``old``, ``new``) when it really changes. True if it changed."""
    who = origin(source, actor)
    try:
        new = Gender(gender).value
    except ValueError:
        raise InvalidInput(f"gender must be male, female or unknown, got {gender!r}") from None
    guard = "gender <> :new" + (" AND gender = 'unknown'" if only_if_unknown else "")
    params = {"uid": user_id, "new": new, "now": utcnow(), "name": USER_GENDER_CHANGED,
              "src": who.source, "actor": who.actor}  # fmt: skip
    if _pg(executor):
        sql = (
            "WITH old AS (SELECT id AS old_id, gender AS old_gender FROM users "
            "WHERE id = :uid FOR UPDATE), "
            f"u AS (UPDATE users SET gender = :new, updated_at = :now FROM old "
            f"WHERE id = old.old_id AND {guard} RETURNING old.old_gender), "
            "ev AS (INSERT INTO events (user_id, name, props, source, actor, at) "
            "SELECT :uid, :name, jsonb_build_object('old', u.old_gender, 'new', "
            "CAST(:new AS text)), :src, :actor, :now FROM u) "
            "SELECT old_gender FROM u"
        )
        statements = [sql]
    else:
        statements = [
            "INSERT INTO events (user_id, name, props, source, actor, at) "
            "SELECT :uid, :name, json_object('old', gender, 'new', :new), :src, :actor, :now "
            f"FROM users WHERE id = :uid AND {guard}",
            f"UPDATE users SET gender = :new, updated_at = :now WHERE id = :uid AND {guard} "
            "RETURNING gender",
        ]
    results = await _run(executor, statements, params)
    return results.first() is not None


async def set_active(
    executor: Executor,
    user_ids: int | Iterable[int],
    active: bool,
    *,
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> list[int]:
    """Set ``is_active`` for users; ``user.blocked`` / ``user.unblocked`` is recorded for each
    whose value really changes. Returns those ids."""
    who = origin(source, actor)
    ids = [user_ids] if isinstance(user_ids, int) else list(user_ids)
    if not ids:
        return []
    name = USER_UNBLOCKED if active else USER_BLOCKED
    params: dict[str, Any] = {"active": active, "now": utcnow(), "name": name,
                              "src": who.source, "actor": who.actor}  # fmt: skip
    if _pg(executor):
        # The UPDATE re-checks ``is_active <> :active`` on the row version it updates, so a
        # concurrent writer's change is never reported twice.
        params["ids"] = ids
        statements = [
            "WITH u AS (UPDATE users SET is_active = :active, updated_at = :now "
            "WHERE id = ANY(CAST(:ids AS bigint[])) AND is_active <> :active RETURNING id), "
            "ev AS (INSERT INTO events (user_id, name, props, source, actor, at) "
            "SELECT id, :name, '{}'::jsonb, :src, :actor, :now FROM u) "
            "SELECT id FROM u"
        ]
    else:
        params["ids"] = "[" + ",".join(str(int(i)) for i in ids) + "]"
        where = "id IN (SELECT value FROM json_each(:ids)) AND is_active <> :active"
        statements = [
            "INSERT INTO events (user_id, name, props, source, actor, at) "
            f"SELECT id, :name, '{{}}', :src, :actor, :now FROM users WHERE {where}",
            f"UPDATE users SET is_active = :active, updated_at = :now WHERE {where} RETURNING id",
        ]
    results = await _run(executor, statements, params)
    return sorted(r[0] for r in results.all())


async def _run(executor: Executor, statements: list[str], params: dict[str, Any]) -> Result[Any]:
    """Run the statements; the result of the last one (the one that returns rows)."""
    for sql in statements[:-1]:
        await executor.execute(text(sql).bindparams(bindparam("now", type_=UTCDateTime())), params)
    last = text(statements[-1]).bindparams(bindparam("now", type_=UTCDateTime()))
    return await executor.execute(last, params)
