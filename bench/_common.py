"""Helpers shared by the benchmarks: a throw-away PostgreSQL database per run."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from relove.db.engine import normalise_url

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return normalise_url(os.environ.get("RELOVE_BENCH_DATABASE_URL", DEFAULT_PG))


@asynccontextmanager
async def scratch_postgres(prefix: str = "relove_bench") -> AsyncIterator[str]:
    """Create a fresh database on the benchmark server; drop it afterwards."""
    base = make_url(server_url())
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
