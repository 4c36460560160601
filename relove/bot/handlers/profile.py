"""/profile: show users, readably, what the bot stores about them."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.bot.render import user_card
from relove.bot.texts import Texts
from relove.db.models import User, UserSnapshot


async def profile(
    message: Message, user: UserSnapshot, session: AsyncSession, texts: Texts
) -> None:
    # Re-read: the touch's copy predates what other handlers may have written since.
    fresh = await session.get(User, user.id) or user
    await message.answer(user_card(fresh, texts, title=texts("profile_title")))


def create_router() -> Router:
    router = Router(name="profile")
    router.message.register(profile, Command("profile"))
    return router
