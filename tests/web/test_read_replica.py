"""RELOVE_DATABASE_READ_URL: the console's lists, counts, dashboard and export read the replica;
sign-in, writes and everything else stay on the primary. The "replica" here is a second
database of the same backend holding other users, so what a page shows tells where it read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.config import load_settings
from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.db.migrate import upgrade
from relove.errors import ConfigError
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.web.conftest import OWNER_ID, MakeConsole, add_users


@pytest.fixture
async def replica(database_url: str, tmp_path: Path
                  ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    pg = make_url(normalise_url(database_url)).get_backend_name() == "postgresql"
    if pg:
        url, name = await _create_pg_database()
    else:
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'replica.db'}", ""
    engine = create_engine(url)
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()
    if pg:
        await _drop_pg_database(name)


async def test_lists_and_exports_read_the_replica(
    make_console: MakeConsole, session_factory: async_sessionmaker[AsyncSession],
    replica: async_sessionmaker[AsyncSession],
) -> None:
    await add_users(session_factory, [{"id": 501, "first_name": "PrimaryPaul"}])
    await add_users(replica, [{"id": 502, "first_name": "ReplicaRita"}])
    console = await make_console()
    console.app.state.console.read_sessions = replica
    browser = await console.login(OWNER_ID)  # sessions and admins: the primary

    page = await browser.get("/audience")
    assert page.status_code == 200
    assert "ReplicaRita" in page.text and "PrimaryPaul" not in page.text
    export = await browser.get("/audience/export.csv")
    assert export.status_code == 200
    assert "ReplicaRita" in export.text and "PrimaryPaul" not in export.text

    console.app.state.console.read_sessions = None  # unset: everything on the primary
    page = await browser.get("/audience")
    assert "PrimaryPaul" in page.text and "ReplicaRita" not in page.text


def test_the_replica_must_be_postgresql() -> None:
    with pytest.raises(ConfigError, match="RELOVE_DATABASE_READ_URL"):
        load_settings(_env_file=None, database_read_url="sqlite:///replica.db")
    ok = load_settings(_env_file=None, database_read_url="postgresql://ro@replica/relove")
    assert ok.database_read_url == "postgresql://ro@replica/relove"
