"""Shared fixtures: every storage test runs on SQLite, and on PostgreSQL when
``RELOVE_TEST_DATABASE_URL`` is set (each test run gets its own throw-away database)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.db.migrate import upgrade
from relove.db.models import Base
from relove.db.registry import import_all_models

import_all_models()

pytest_plugins = ["tests.sandbox_fixtures"]

PG_URL = os.environ.get("RELOVE_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


async def _create_pg_database() -> tuple[str, str]:
    assert PG_URL
    base = make_url(normalise_url(PG_URL))
    name = f"relove_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False), name


async def _drop_pg_database(name: str) -> None:
    assert PG_URL
    admin = create_async_engine(make_url(normalise_url(PG_URL)), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
def tmp_db_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("db")


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_db_dir) -> AsyncIterator[str]:
    """A migrated, empty database URL per backend for the whole test session."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_db_dir / 'relove-test.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        yield url
        return
    url, name = await _create_pg_database()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    yield url
    await _drop_pg_database(name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()


async def clear_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The session's engine with every table emptied before the test."""
    await clear_tables(engine)
    yield engine


@pytest.fixture
def session_factory(db: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(db)


@pytest.fixture
async def session(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with session_factory() as s:
        yield s
