"""Console fixtures: the console app on the test database (SQLite, and PostgreSQL when
configured), signed-in httpx clients per role, and a clock the tests move."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.admins.login import create_login_token
from relove.admins.models import Role
from relove.admins.service import add_admin
from relove.config import Settings
from relove.db.models import User
from relove.web.app import close_console, create_console
from relove.web.telegram import ConsoleBot

OWNER_ID = 9001  # RELOVE_ADMIN_IDS
OPERATOR_ID = 9002
VIEWER_ID = 9003
BASE = "https://console.test"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Browser(httpx.AsyncClient):
    """An httpx client holding a console session, with its CSRF token."""

    csrf: str = ""

    async def post_form(self, url: str, data: dict[str, Any] | None = None, *,
                        htmx: bool = True, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if htmx:
            headers["HX-Request"] = "true"
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return await self.post(url, data=data or {}, headers=headers, **kwargs)


@dataclass
class ConsoleHarness:
    app: FastAPI
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    browsers: list[Browser] = field(default_factory=list)

    def client(self, base_url: str = BASE) -> Browser:
        """A new browser (closed with the fixture)."""
        browser = Browser(transport=httpx.ASGITransport(app=self.app), base_url=base_url)
        self.browsers.append(browser)
        return browser

    async def login(self, admin_id: int, base_url: str = BASE) -> Browser:
        async with self.sessions.begin() as s:
            token = await create_login_token(s, admin_id, now=self.clock())
        browser = self.client(base_url)
        r = await browser.post(f"/auth/link/{token}")
        assert r.status_code == 303, r.text
        page = await browser.get("/segments")
        assert page.status_code == 200, page.text
        match = _CSRF.search(page.text)
        assert match is not None
        browser.csrf = match.group(1)
        return browser


def console_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = dict(admin_ids=[OWNER_ID], console_url="https://console.test",
                                  _env_file=None)
    values.update(overrides)
    return Settings(**values)


async def add_users(sessions: async_sessionmaker[AsyncSession],
                    rows: list[dict[str, Any]]) -> None:
    async with sessions.begin() as s:
        defaults = {"username": None, "first_name": None, "last_name": None, "is_active": True,
                    "markers": {}, "context": {}}
        await s.execute(insert(User.__table__), [{**defaults, **r} for r in rows])


MakeConsole = Callable[..., Awaitable[ConsoleHarness]]


@pytest.fixture
async def make_console(session_factory: async_sessionmaker[AsyncSession]
                       ) -> AsyncIterator[MakeConsole]:
    made: list[ConsoleHarness] = []

    async def make(bot: ConsoleBot | None = None, **overrides: Any) -> ConsoleHarness:
        settings = console_settings(**overrides)
        clock = Clock()
        async with session_factory.begin() as s:
            await add_admin(s, OPERATOR_ID, Role.operator)
            await add_admin(s, VIEWER_ID, Role.viewer)
        app = create_console(settings, session_factory, bot=bot, clock=clock)
        harness = ConsoleHarness(app, settings, session_factory, clock)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        for browser in harness.browsers:
            await browser.aclose()
        await close_console(harness.app)


@pytest.fixture
async def console(make_console: MakeConsole) -> ConsoleHarness:
    return await make_console()


@pytest.fixture
async def owner(console: ConsoleHarness) -> Browser:
    return await console.login(OWNER_ID)


@pytest.fixture
async def operator(console: ConsoleHarness) -> Browser:
    return await console.login(OPERATOR_ID)


@pytest.fixture
async def viewer(console: ConsoleHarness) -> Browser:
    return await console.login(VIEWER_ID)
