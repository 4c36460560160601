"""Broadcast fixtures: simulated users in the sandbox mirrored as ``users`` rows, a bot whose
session carries the shared limiter, and a runner that sends through it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.factory import close_bot, create_bot
from relove.broadcasts.content import MessageContent
from relove.broadcasts.runner import BroadcastRunner
from relove.broadcasts.sender import SenderOptions
from relove.broadcasts.service import create_broadcast, start_broadcast
from relove.broadcasts.telegram import HttpSend
from relove.config import Settings
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.telegram.client import BotApiClient
from relove.telegram.ratelimit.middleware import limiter_of


def make_settings(sandbox: Sandbox, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        bot_token=DEFAULT_TOKEN, telegram_api_url=sandbox.url, admin_ids=[4242],
        broadcast_lease_seconds=3.0, broadcast_poll_seconds=0.1, _env_file=None,
    )
    values.update(overrides)
    return Settings(**values)


async def seed_users(
    engine: AsyncEngine, client: SandboxClient, n: int, *, start_id: int = 10_000,
    markers: dict[str, Any] | None = None, **sim: Any,
) -> list[int]:
    """``n`` users who started the bot, in the sandbox and in the database."""
    ids = list(range(start_id, start_id + n))
    await client.create_users(
        [{"id": i, "first_name": f"User{i}", "started": True, **sim} for i in ids]
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(User.__table__),
            [{"id": i, "first_name": f"User{i}", "markers": markers or {"city": "Москва"},
              "context": {}, "is_active": True, "gender": "unknown"} for i in ids],
        )
    return ids


@pytest.fixture
async def bot(sandbox: Sandbox) -> AsyncIterator[Bot]:
    b = create_bot(make_settings(sandbox))
    yield b
    await close_bot(b)


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[BotApiClient]:
    """The lean Bot API client the workers send broadcasts with."""
    client = BotApiClient(DEFAULT_TOKEN, sandbox.url)
    yield client
    await client.close()


def make_runner(
    engine: AsyncEngine, bot: Bot, settings: Settings, **kwargs: Any
) -> BroadcastRunner:
    """A runner as the bot process builds it: broadcast messages over the lean client, paced by
    the bot's shared limiter."""
    kwargs.setdefault("sender_options", SenderOptions(heartbeat_every=0.5))
    client = BotApiClient(bot.token, settings.telegram_api_url)
    _clients.append(client)
    limiter = limiter_of(bot)
    assert limiter is not None
    return BroadcastRunner(
        engine, lambda paid: HttpSend(client, paid=paid), limiter, settings, **kwargs,
    )


_clients: list[BotApiClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        await _clients.pop().close()


async def new_broadcast(
    engine: AsyncEngine, text: str = "Привет, {{ user.first_name }}!", *,
    filter_text: str = "city = 'Москва'", start: bool = True, **kwargs: Any,
) -> int:
    sessions = create_session_factory(engine)
    async with sessions() as session:
        b = await create_broadcast(session, name="test", filter_text=filter_text,
                                   content=kwargs.pop("content", None) or MessageContent(text),
                                   **kwargs)
        if start:
            await start_broadcast(session, b.id)
        await session.commit()
        return b.id
