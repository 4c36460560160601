"""Reusable aiogram filters."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from aiogram.types import User as TgUser
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.admins.models import Role
from relove.admins.service import role_of
from relove.config import Settings


class IsAdmin(Filter):
    """Passes for admins whose role allows ``role`` (default: any admin, viewers included) and
    gives the handler ``admin_role``. ``RELOVE_ADMIN_IDS`` are owners (no database read);
    others are looked up in the ``admins`` table in a short session of their own (never the
    update's, so a handler that writes first keeps doing so).

    Register it AFTER the command filter (``Command("mark"), IsAdmin(Role.operator)``) so the
    table is read only for admin commands, never for every message."""

    def __init__(self, role: Role = Role.viewer) -> None:
        self.role = role

    async def __call__(
        self,
        event: TelegramObject,
        settings: Settings,
        event_from_user: TgUser | None = None,
        session_factory: async_sessionmaker[AsyncSession] | None = None,
    ) -> bool | dict[str, Any]:
        if event_from_user is None:
            return False
        if event_from_user.id in settings.admin_ids:
            return {"admin_role": Role.owner}
        if session_factory is None:
            return False
        async with session_factory() as session:
            role = await role_of(session, settings, event_from_user.id)
        if role is None or not role.allows(self.role):
            return False
        return {"admin_role": role}
