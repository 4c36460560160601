"""The catch-all: any message no other router took gets a polite default reply.

Registered LAST (see ``build_routers``) so it never swallows a command.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from relove.bot.texts import Texts


async def default_reply(message: Message, texts: Texts) -> None:
    await message.answer(texts("default_reply"))


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(default_reply)
    return router
