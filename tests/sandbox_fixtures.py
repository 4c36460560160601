"""Reusable fixtures: the sandbox Bot API on a free port, and the real bot polling it.

Registered in tests/conftest.py through ``pytest_plugins``, so every test package can ask for
``sandbox``, ``sandbox_client`` or ``live_bot`` (which runs on the ``db`` fixture's database, on
SQLite and on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.config import Settings
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox, SandboxConfig
from relove.sandbox.server import running_sandbox

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

    async def new_user(self, first_name: str = "Аня", **fields: Any) -> dict[str, Any]:
        return await self.client.create_user(first_name, **fields)


@pytest.fixture
async def live_bot(db: AsyncEngine, sandbox: Sandbox,
                   sandbox_client: SandboxClient) -> AsyncIterator[LiveBot]:
    """The real bot (aiogram long polling over HTTP) against the sandbox, on the test DB."""
    from relove.bot.factory import create_bot, create_dispatcher

    settings = Settings(bot_token=DEFAULT_TOKEN, telegram_api_url=sandbox.url,
                        admin_ids=[LIVE_ADMIN_ID], _env_file=None)  # type: ignore[call-arg]
    bot = create_bot(settings)
    dp = create_dispatcher(settings, db)
    polls_before = sandbox.stats.calls["getUpdates"]
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=5, close_bot_session=True))

    async def polling() -> bool:
        if task.done():
            task.result()  # start-up failed: raise its error
        return sandbox.stats.calls["getUpdates"] > polls_before

    await eventually(polling, timeout=15)
    try:
        yield LiveBot(sandbox, sandbox_client, bot, dp, settings, db)
    finally:
        # Let updates in flight finish while the sandbox still answers, then stop.
        pending = set(dp._handle_update_tasks)  # noqa: SLF001 - no public accessor
        if pending:
            await asyncio.wait(pending, timeout=10)
        await dp.stop_polling()
        await asyncio.wait_for(task, 15)
