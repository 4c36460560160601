"""Whole-user operations: look up, delete."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import User
from relove.errors import NotFound


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def delete_user(session: AsyncSession, user_id: int) -> bool:
    """Delete the user (rows that reference it go with it by ON DELETE CASCADE)."""
    # DML answers a CursorResult (it has rowcount); Session.execute is typed as plain Result.
    result = cast(CursorResult[Any], await session.execute(delete(User).where(User.id == user_id)))
    return bool(result.rowcount)
