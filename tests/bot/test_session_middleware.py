"""No transaction stays open while the bot talks to Telegram."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Router
from aiogram.types import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.bot.factory import create_bot, create_dispatcher
from relove.config import Settings
from relove.db.models import User, UserSnapshot
from relove.users import service
from tests.bot.fake_telegram import FakeTelegramSession, message_update, tg_user


async def test_writes_are_committed_before_each_reply(db, session_factory):
    seen_at_send: list[Any] = []

    class Probe(FakeTelegramSession):
        async def make_request(self, bot: Bot, method, timeout=None):  # type: ignore[no-untyped-def]
            # What another connection sees while the request is on the wire.
            async with session_factory() as other:
                user = await other.scalar(select(User).where(User.id == 1))
                seen_at_send.append(user.markers.get("step") if user else None)
            return await super().make_request(bot, method, timeout)

    async def handler(message: Message, user: UserSnapshot, session: AsyncSession) -> None:
        await service.set_values(session, user.id, {"step": 1})
        await message.answer("one")
        await service.set_values(session, user.id, {"step": 2})
        await message.answer("two")

    settings = Settings(bot_token="42:TEST", _env_file=None)
    bot = create_bot(settings, session=Probe())
    dp = create_dispatcher(settings, db)
    probe = Router()
    probe.message.register(handler)
    dp.sub_routers.insert(0, probe)
    probe._parent_router = dp
    await dp.feed_raw_update(bot, message_update(tg_user(1), "hi"))
    await dp.emit_shutdown()
    assert seen_at_send == [1, 2]
