"""/login (admins, in a private chat): a one-time link that opens the operator console.

The link works once, within ``RELOVE_CONSOLE_LOGIN_MINUTES``; the message has no link preview
(a preview fetch must never be what opens it — and the console's link page only logs in on a
button press, so even a fetch would not)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import LinkPreviewOptions, Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.login import create_login_token, login_url
from relove.admins.models import Role
from relove.bot.filters import IsAdmin
from relove.bot.texts import Texts
from relove.config import Settings


async def login(
    message: Message, session: AsyncSession, settings: Settings, texts: Texts, admin_role: Role
) -> None:
    assert message.from_user is not None
    token = await create_login_token(session, message.from_user.id,
                                     minutes=settings.console_login_minutes)
    await session.commit()
    await message.answer(
        texts("console_login_link", url=login_url(settings.console_base_url, token),
              minutes=settings.console_login_minutes, role=admin_role.value),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


async def login_elsewhere(message: Message, texts: Texts) -> None:
    await message.answer(texts("console_login_private_only"))


def create_router() -> Router:
    router = Router(name="login")
    router.message.register(login, Command("login"), F.chat.type == "private", IsAdmin())
    router.message.register(login_elsewhere, Command("login"), IsAdmin())
    return router
