"""``relove serve``'s engine: the pool the API settings ask for (PostgreSQL), SQLite's own, and
a pooled connection the database dropped is replaced before a request uses it (pre-ping)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from relove.api.server import create_server_app
from relove.db.engine import create_engine


async def test_server_engine_uses_the_api_pool_settings(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")  # no .env file from the checkout
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_API_POOL_SIZE", "7")
    monkeypatch.delenv("RELOVE_DATABASE_READ_URL", raising=False)
    app = create_server_app()
    engine = app.state.api.engine
    try:
        if engine.dialect.name == "postgresql":
            assert engine.pool.size() == 7
        async with engine.connect() as conn:  # and it serves
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
            # the database drops the pooled connection (as a restart or failover would): the
            # pre-ping (RELOVE_API_POOL_PRE_PING's default) finds it, the pool opens another
            killer = create_engine(database_url)
            async with killer.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await killer.dispose()
            async with engine.begin() as conn:
                assert (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        await engine.dispose()
