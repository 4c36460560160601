"""Fixtures of the API tests: the real app on the ``db`` fixture's database (SQLite, and
PostgreSQL when RELOVE_TEST_DATABASE_URL is set), spoken to over httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.api.tokens import SCOPES, create_token
from relove.config import Settings

TokenFactory = Callable[..., Awaitable[str]]


def api_settings(database_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database_url,
        "api_rate_limit": 10_000.0,
        "api_rate_burst": 10_000,
        "api_token_cache_seconds": 0.0,
        "redis_url": None,
        "_env_file": None,
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(database_url)


@pytest.fixture
def app(
    db: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> FastAPI:
    return create_app(settings, db, session_factory, limiter=MemoryRateLimiter())


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


@pytest.fixture
def make_token(session_factory: async_sessionmaker[AsyncSession]) -> TokenFactory:
    counter = iter(range(1_000_000))

    async def make(*scopes: str, name: str | None = None, **kwargs: Any) -> str:
        async with session_factory.begin() as session:
            _, token = await create_token(
                session, name or f"t{next(counter)}", scopes or SCOPES, **kwargs
            )
        return token

    return make


@pytest.fixture
async def admin_headers(make_token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {await make_token('admin', name='root')}"}


async def add_users(
    sessions: async_sessionmaker[AsyncSession], *users: dict[str, Any]
) -> None:
    """Insert users directly (the API does not create Telegram users)."""
    from relove.db.models import User

    async with sessions.begin() as session:
        for fields in users:
            session.add(User(**fields))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
