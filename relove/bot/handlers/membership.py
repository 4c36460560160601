"""my_chat_member: a user blocks or unblocks the bot in their private chat.

The touch middleware already writes ``is_active`` from the update; this router exists so the
dispatcher asks Telegram for ``my_chat_member`` updates at all (aiogram's polling requests only
the update types some handler is registered for).
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import ChatMemberUpdated

log = logging.getLogger(__name__)


async def membership_changed(event: ChatMemberUpdated) -> None:
    log.info(
        "user %s: bot status %s -> %s",
        event.from_user.id,
        event.old_chat_member.status,
        event.new_chat_member.status,
    )


def create_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.register(membership_changed)
    return router
