"""Reusable aiogram filters."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from aiogram.types import User as TgUser

from relove.config import Settings


class IsAdmin(Filter):
    """Passes only for users listed in ``RELOVE_ADMIN_IDS``."""

    async def __call__(
        self, event: TelegramObject, settings: Settings, event_from_user: TgUser | None = None
    ) -> bool:
        return event_from_user is not None and event_from_user.id in settings.admin_ids
