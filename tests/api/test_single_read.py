"""``GET /users/{id}`` on ``relove serve``'s engine (PostgreSQL: autocommit, its connections skip
the pool's pre-ping): it answers as before, and a connection the database dropped (restart,
failover) costs no failed request — the route runs again on a fresh connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.api.server import api_engine
from relove.config import Settings
from relove.db.engine import create_session_factory
from relove.db.raw import _MAX_COMPILED, RawStatements
from tests.api.conftest import TokenFactory, add_users, bearer


@pytest.fixture
async def server_engine(settings: Settings, database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = api_engine(settings, database_url)
    yield engine
    await engine.dispose()


async def test_get_user_survives_dropped_connections(
    db: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    server_engine: AsyncEngine,
    make_token: TokenFactory,
) -> None:
    if server_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (SQLite has no connections to drop)")
    sessions = create_session_factory(server_engine)
    app = create_app(settings, server_engine, sessions, limiter=MemoryRateLimiter())
    await add_users(session_factory, {"id": 5, "first_name": "Анна", "markers": {"city": "Сочи"}})
    headers = bearer(await make_token("users:read"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        first = await client.get("/api/v1/users/5", headers=headers)
        assert first.status_code == 200
        assert first.json()["markers"] == {"city": "Сочи"}
        async with server_engine.connect() as conn:  # the pooled connection the GET used
            pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
        # the database drops it (as a restart would); the GET meets it without a pre-ping
        async with db.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        again = await client.get("/api/v1/users/5", headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["first_name"] == "Анна"
        missing = await client.get("/api/v1/users/6", headers=headers)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")


async def test_raw_statements_keep_a_bounded_cache(server_engine: AsyncEngine) -> None:
    """Every `fields=` list is a statement of its own: the compiled ones kept stay bounded."""
    if server_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (the raw path is asyncpg's)")
    raw = RawStatements(server_engine)
    for n in range(_MAX_COMPILED + 50):
        row = await raw.fetchrow(select(literal_column(str(n)).label("n")), {}, read=True)
        assert row["n"] == n
    assert len(raw._compiled) <= _MAX_COMPILED
