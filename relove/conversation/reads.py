"""Reading a user's documents before writing them, safely on SQLite too.

SQLite transactions begin deferred: a transaction that first reads and then writes fails at
once with "database is locked" if another connection committed in between (its snapshot is
stale and the lock upgrade is refused, whatever the busy timeout). So on SQLite a read that
precedes writes ends its read transaction; the writes then start a fresh one that waits for
the lock normally. On PostgreSQL nothing changes (READ COMMITTED behaves the same way).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import UserSnapshot
from relove.users.service import Executor, get_user_documents


async def read_documents(executor: Executor, user_id: int) -> dict[str, dict[str, Any]]:
    docs = await get_user_documents(executor, user_id)
    if (
        isinstance(executor, AsyncSession)
        and executor.get_bind().dialect.name == "sqlite"
        and executor.in_transaction()
        and not executor.new
        and not executor.dirty
        and not executor.deleted
    ):
        await executor.commit()
    return docs


async def user_dict(executor: Executor, user: UserSnapshot) -> dict[str, Any]:
    """``user.to_dict()`` with fresh ``markers`` and ``context``."""
    data = user.to_dict()
    data.update(await read_documents(executor, user.id))
    return data
