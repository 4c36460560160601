"""Reading a user's documents (fresh ``markers`` and ``context``) inside the caller's unit of
work. These helpers only read: they never commit. A unit that reads and then writes declares
it first with :func:`relove.db.uow.begin_write` (see that module for the rule and for why
SQLite needs it).
"""

from __future__ import annotations

from typing import Any

from relove.db.models import UserSnapshot
from relove.users.service import Executor, get_user_documents


async def read_documents(executor: Executor, user_id: int) -> dict[str, dict[str, Any]]:
    return await get_user_documents(executor, user_id)


async def user_dict(executor: Executor, user: UserSnapshot) -> dict[str, Any]:
    """``user.to_dict()`` with fresh ``markers`` and ``context``."""
    data = user.to_dict()
    data.update(await read_documents(executor, user.id))
    return data
