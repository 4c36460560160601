"""Reusable fixtures: the sandbox Bot API on a free port, and the real bot polling it.

Registered in tests/conftest.py through ``pytest_plugins``, so every test package can ask for
``sandbox``, ``sandbox_client`` or ``live_bot`` (which runs on the ``db`` fixture's database, on
SQLite and on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from aiogram import Bot, Dispatcher, Router
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.config import Settings
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox, SandboxConfig
from relove.sandbox.server import running_sandbox

if TYPE_CHECKING:
    from relove.bot.polling import Poller

T = TypeVar("T")
LIVE_ADMIN_ID = 4242


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A fresh sandbox served on a free port (``sandbox.url``)."""
    async with running_sandbox(SandboxConfig(port=0)) as sb:
        yield sb


@pytest.fixture
async def sandbox_client(sandbox: Sandbox) -> AsyncIterator[SandboxClient]:
    assert sandbox.url
    async with SandboxClient(sandbox.url) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 10.0,
                     interval: float = 0.05) -> T:
    """Await ``check()`` until it returns something truthy (e.g. a row the bot writes)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:g}s (last: {result!r})")
        await asyncio.sleep(interval)


@dataclass
class LiveBot:
    """The product's bot polling the sandbox, plus the control client to play its users."""

    sandbox: Sandbox
    client: SandboxClient
    bot: Bot
    dp: Dispatcher
    settings: Settings
    engine: AsyncEngine
    poller: Poller | None = None

    async def new_user(self, first_name: str = "Аня", **fields: Any) -> dict[str, Any]:
        return await self.client.create_user(first_name, **fields)


@pytest.fixture
async def live_bot(db: AsyncEngine, sandbox: Sandbox,
                   sandbox_client: SandboxClient) -> AsyncIterator[LiveBot]:
    """The real bot (relove's long polling over HTTP) against the sandbox, on the test DB."""
    async with running_live_bot(db, sandbox, sandbox_client) as live:
        yield live


@asynccontextmanager
async def running_live_bot(engine: AsyncEngine, sandbox: Sandbox, client: SandboxClient, *,
                           routers: Sequence[Router] = (), **settings: Any
                           ) -> AsyncIterator[LiveBot]:
    """The product's bot polling ``sandbox`` (``settings`` override the test defaults;
    ``routers`` go in front of the product's own, like a feature a developer adds)."""
    from relove.bot.factory import create_bot, create_dispatcher
    from relove.bot.polling import Poller

    config = Settings(**{"bot_token": DEFAULT_TOKEN, "telegram_api_url": sandbox.url,
                         "admin_ids": [LIVE_ADMIN_ID], "_env_file": None, **settings})
    bot = create_bot(config)
    dp = create_dispatcher(config, engine)
    for router in reversed(routers):
        dp.sub_routers.insert(0, router)
        router._parent_router = dp
    poller = Poller(bot, dp, polling_timeout=5)
    polls_before = sandbox.stats.calls["getUpdates"]
    task = asyncio.create_task(poller.run(handle_signals=False))

    async def polling() -> bool:
        if task.done():
            task.result()  # start-up failed: raise its error
        return sandbox.stats.calls["getUpdates"] > polls_before

    try:
        await eventually(polling, timeout=30)
        yield LiveBot(sandbox, client, bot, dp, config, engine, poller)
    finally:
        # The poller finishes the updates in flight while the sandbox still answers.
        poller.stop()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await bot.session.close()
