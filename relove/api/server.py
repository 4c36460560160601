"""``relove serve``'s app factory: uvicorn calls :func:`create_server_app` in each worker
process, which is that process's ``main()`` — it loads the settings, builds the engine and
session factory and passes them down."""

from __future__ import annotations

import gc
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.api.app import Mounted, create_app
from relove.config import Settings, load_settings
from relove.db.engine import create_engine, create_session_factory, ping_on_checkout
from relove.ops.logs import configure_logging
from relove.web.app import console_mount


def _pool(settings: Settings, url: str) -> dict[str, Any]:
    """The API's pool options (PostgreSQL; SQLite keeps its own pool)."""
    if make_url(url).get_backend_name() != "postgresql":
        return {}
    # the pre-ping (RELOVE_API_POOL_PRE_PING) is ping_on_checkout's one round trip, not three
    return {"pool_pre_ping": False, "pool_size": settings.api_pool_size}


def api_engine(settings: Settings, url: str) -> AsyncEngine:
    """The API's engine: its pool (PostgreSQL: ``RELOVE_API_POOL_SIZE``, the one-round-trip
    pre-ping when ``RELOVE_API_POOL_PRE_PING``)."""
    engine = create_engine(url, **_pool(settings, url))
    if settings.api_pool_pre_ping and engine.dialect.name == "postgresql":
        ping_on_checkout(engine)
    return engine


def create_server_app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = api_engine(settings, settings.database_url)
    sessions = create_session_factory(engine)
    closers = [engine.dispose]
    read_sessions = None
    if settings.database_read_url:  # lists, counts, dashboard and exports read the replica
        read_engine = api_engine(settings, settings.database_read_url)
        read_sessions = create_session_factory(read_engine)
        closers.append(read_engine.dispose)
    mounts: list[Mounted] = [console_mount(settings, sessions, read_sessions=read_sessions)]
    app = create_app(settings, engine, sessions, mounts=mounts, closers=closers)
    # Everything built so far (modules, the app, SQLAlchemy's and pydantic's structures) lives
    # as long as the process: out of the collector's sight, a collection no longer walks those
    # ~150,000 objects — it had cost a 1,000-item users:batch 60 % of its Python time.
    gc.collect()  # (garbage first: what is frozen is never collected)
    gc.freeze()
    return app
