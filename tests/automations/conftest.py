"""Automation fixtures: a movable clock, users mirrored in the sandbox and the database, and a
runner that sends over the lean client to the sandbox (the transport is real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.automations.definition import parse_automations
from relove.automations.models import AutomationRun
from relove.automations.runner import AutomationRunner, RunnerOptions
from relove.broadcasts.telegram import HttpSend
from relove.db.engine import create_session_factory
from relove.db.models import User
from relove.events import EventSource, record
from relove.events.catalog import USER_CREATED
from relove.events.models import Event
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.telegram.client import BotApiClient
from relove.telegram.ratelimit import Limits, MemoryRateLimitStorage, RateLimiter


@dataclass
class Clock:
    """The runner's time: moved by the test, never by sleeping."""

    now: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[BotApiClient]:
    client = BotApiClient(DEFAULT_TOKEN, sandbox.url)
    yield client
    await client.close()


def limiter() -> RateLimiter:
    return RateLimiter(MemoryRateLimitStorage(), Limits(rate=200, per_chat=50, per_chat_burst=50))


def make_runner(engine: AsyncEngine, api: BotApiClient, yaml_text: str, clock: Clock,
                **kwargs: Any) -> AutomationRunner:  # fmt: skip
    options = kwargs.pop("options", None) or RunnerOptions(rate=200, lease_seconds=60,
                                                           event_lag_seconds=0.2)  # fmt: skip
    return AutomationRunner(engine, kwargs.pop("send", None) or HttpSend(api), limiter(),
                            automations=parse_automations(yaml_text, "test.yaml"), clock=clock,
                            options=options, **kwargs)  # fmt: skip


async def new_users(engine: AsyncEngine, client: SandboxClient, ids: list[int],
                    markers: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Users who started the bot: in the sandbox, and in the database with ``user.created``
    (as the touch writes them)."""
    await client.create_users([{"id": i, "first_name": f"Аня{i}", "started": True} for i in ids])
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        for i in ids:
            session.add(User(id=i, first_name=f"Аня{i}", markers=dict(markers or {})))
        await session.flush()
        for i in ids:
            await record(session, i, USER_CREATED, source=EventSource.bot)


async def bot_texts(client: SandboxClient, user_id: int) -> list[str]:
    return [m["text"] for m in await client.messages(user_id, from_bot=True)]


async def runs(engine: AsyncEngine, automation_id: str | None = None) -> list[AutomationRun]:
    async with create_session_factory(engine)() as session:
        stmt = select(AutomationRun).order_by(AutomationRun.id)
        if automation_id:
            stmt = stmt.where(AutomationRun.automation_id == automation_id)
        return list((await session.execute(stmt)).scalars())


async def events(engine: AsyncEngine, name: str) -> list[Event]:
    async with create_session_factory(engine)() as session:
        return list((await session.execute(
            select(Event).where(Event.name == name).order_by(Event.id))).scalars())


async def count(engine: AsyncEngine, name: str) -> int:
    async with create_session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).where(Event.name == name)) or 0)
