"""``relove serve``'s engine: the pool the API settings ask for (PostgreSQL), SQLite's own."""

from __future__ import annotations

import pytest

from relove.api.server import create_server_app


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
            assert engine.pool._pre_ping is True  # RELOVE_API_POOL_PRE_PING's default
        async with engine.connect() as conn:  # and it serves
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    finally:
        await engine.dispose()
