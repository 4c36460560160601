"""The catch-alls: any message no other router took gets a polite default reply; any button
press no other router took — a stale button, a forged or unknown ``callback_data``, a
non-admin pressing an admin's button — is answered too, so no spinner is left turning.

Every callback in the bot has an aiogram ``CallbackData`` factory (scenarios, recommend,
forget, broadcasts); data that does not unpack into one lands here.

Registered LAST (see ``build_routers``) so it never swallows a command or a known button.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from relove.bot.texts import Texts


async def default_reply(message: Message, texts: Texts) -> None:
    await message.answer(texts("default_reply"))


async def stale_button(query: CallbackQuery, texts: Texts) -> None:
    await query.answer(texts("button_stale"))


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(default_reply)
    router.callback_query.register(stale_button)
    return router
