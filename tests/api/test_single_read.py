"""``GET /users/{id}`` on ``relove serve``'s one-SELECT engine (PostgreSQL: autocommit, no pool
pre-ping): it answers as before, and a connection the database dropped (restart, failover) costs
no failed request — the route runs again on a fresh connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.api.server import _single_read_engine
from relove.config import Settings
from relove.db.engine import create_session_factory
from tests.api.conftest import TokenFactory, add_users, bearer


@pytest.fixture
async def reads(settings: Settings, database_url: str) -> AsyncIterator[AsyncEngine | None]:
    engine = _single_read_engine(settings, database_url)
    yield engine
    if engine is not None:
        await engine.dispose()


async def test_get_user_survives_dropped_connections(
    db: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    reads: AsyncEngine | None,
    make_token: TokenFactory,
) -> None:
    if reads is None:
        pytest.skip("PostgreSQL only (SQLite's routes share one engine)")
    app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter(),
                     single_reads=create_session_factory(reads))  # fmt: skip
    await add_users(session_factory, {"id": 5, "first_name": "Анна", "markers": {"city": "Сочи"}})
    headers = bearer(await make_token("users:read"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        first = await client.get("/api/v1/users/5", headers=headers)
        assert first.status_code == 200
        assert first.json()["markers"] == {"city": "Сочи"}
        async with reads.connect() as conn:  # the pooled connection the GET used
            pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
        # the database drops every pooled connection of the read engine (as a restart would)
        async with db.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        again = await client.get("/api/v1/users/5", headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["first_name"] == "Анна"
        missing = await client.get("/api/v1/users/6", headers=headers)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
