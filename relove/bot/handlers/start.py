"""/start [payload]: welcome, and first-touch attribution from the deep-link payload."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.bot.texts import Texts
from relove.db.models import UserSnapshot
from relove.events import EventSource
from relove.telegram.limits import is_start_payload
from relove.users import service

#: Telegram deep-link payloads: up to 64 characters of A-Z, a-z, 0-9, _ and -.


async def record_source(session: AsyncSession, user_id: int, payload: str) -> None:
    """``markers.source`` keeps the first payload ever seen; ``last_source`` the latest."""
    await service.set_once(session, user_id, {"source": payload}, source=EventSource.bot)
    await service.set_values(session, user_id, {"last_source": payload}, source=EventSource.bot)


async def start(
    message: Message,
    command: CommandObject,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
) -> None:
    payload = (command.args or "").strip()
    if payload and is_start_payload(payload):
        await record_source(session, user.id, payload)
    await message.answer(texts("welcome", name=user.first_name or user.username or ""))


def create_router() -> Router:
    router = Router(name="start")
    router.message.register(start, CommandStart())
    return router
