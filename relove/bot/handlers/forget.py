"""/forget: delete a user's data after a confirm button."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.bot.texts import Texts
from relove.db.models import UserSnapshot
from relove.users.lifecycle import delete_user


class ForgetCallback(CallbackData, prefix="forget"):
    confirm: bool


async def ask(message: Message, texts: Texts) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=texts("forget_confirm_button"),
                    callback_data=ForgetCallback(confirm=True).pack(),
                ),
                InlineKeyboardButton(
                    text=texts("forget_cancel_button"),
                    callback_data=ForgetCallback(confirm=False).pack(),
                ),
            ]
        ]
    )
    await message.answer(texts("forget_ask"), reply_markup=keyboard)


async def confirm(
    query: CallbackQuery, user: UserSnapshot, session: AsyncSession, texts: Texts
) -> None:
    await delete_user(session, user.id, source="bot")
    await session.commit()
    await query.answer()
    if query.message is not None:
        await query.message.edit_text(texts("forget_done"))  # type: ignore[union-attr]


async def cancel(query: CallbackQuery, texts: Texts) -> None:
    await query.answer()
    if query.message is not None:
        await query.message.edit_text(texts("forget_cancelled"))  # type: ignore[union-attr]


def create_router() -> Router:
    router = Router(name="forget")
    router.message.register(ask, Command("forget"))
    router.callback_query.register(confirm, ForgetCallback.filter(F.confirm))
    router.callback_query.register(cancel, ForgetCallback.filter(~F.confirm))
    return router
