"""A local HTTP sink (a real aiohttp server on 127.0.0.1) that records what webhook receivers
get and answers as each test tells it; a settable clock; a worker factory."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.config import Settings
from relove.db.types import utcnow
from relove.webhooks.worker import WebhookWorker

DEADLINE = 30.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Sink:
    base: str = ""
    received: list[Received] = field(default_factory=list)
    #: per path: statuses to answer in turn (the last one repeats); default 200
    plans: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    extra_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    #: seconds each answer waits (keeps a batch in flight; never asserted)
    delay: float = 0.0

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(Received(request.path, dict(request.headers), body))
        plan = self.plans.get(request.path) or [200]
        status = plan.pop(0) if len(plan) > 1 else plan[0]
        return web.Response(status=status, text=f"sink says {status}",
                            headers=self.extra_headers.get(request.path))


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", s.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    s.base = f"http://127.0.0.1:{port}"
    yield s
    await runner.cleanup()


class Clock:
    """A clock the test moves forward (the retry schedule runs in seconds)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


def wh_settings(database_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database_url, "webhooks_allow_private": True,
        "webhooks_timeout": 5.0, "webhooks_poll_seconds": 0.05, "redis_url": None,
        "_env_file": None,
    }
    base.update(overrides)
    return Settings(**base)


async def wait_for(check: Callable[[], Any], *, deadline: float = DEADLINE) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(0.05)


@dataclass
class Running:
    worker: WebhookWorker
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def close(self) -> None:
        self.stop.set()
        await self.task


@pytest.fixture
async def start_worker(db: AsyncEngine, database_url: str):
    started: list[Running] = []

    async def start(**kw: Any) -> Running:
        settings = kw.pop("settings", None) or wh_settings(database_url)
        worker = WebhookWorker(db, settings, **kw)
        stop = asyncio.Event()
        running = Running(worker, stop, asyncio.create_task(worker.run_forever(stop)))
        started.append(running)
        return running

    yield start
    for r in started:
        await r.close()


@asynccontextmanager
async def unit(session_factory: Any) -> AsyncIterator[Any]:
    """A unit of work as the CLI and API run one: a session committed at the end."""
    async with session_factory() as session:
        yield session
        await session.commit()
