from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.factory import create_bot, create_dispatcher
from relove.config import Settings
from tests.bot.fake_telegram import FakeTelegramSession

ADMIN_ID = 777


@dataclass
class BotHarness:
    bot: Bot
    dp: Dispatcher
    telegram: FakeTelegramSession

    async def feed(self, *updates: dict[str, Any]) -> None:
        for update in updates:
            await self.dp.feed_raw_update(self.bot, update)


@pytest.fixture
async def harness(db: AsyncEngine) -> AsyncIterator[BotHarness]:
    settings = Settings(bot_token="42:TEST", admin_ids=[ADMIN_ID], _env_file=None)
    telegram = FakeTelegramSession()
    bot = create_bot(settings, session=telegram)
    dp = create_dispatcher(settings, db)
    yield BotHarness(bot, dp, telegram)
    await dp.emit_shutdown()
