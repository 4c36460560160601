"""``relove serve``'s app factory: uvicorn calls :func:`create_server_app` in each worker
process, which is that process's ``main()`` — it loads the settings, builds the engine and
session factory and passes them down."""

from __future__ import annotations

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


def _api_engine(settings: Settings, url: str) -> AsyncEngine:
    engine = create_engine(url, **_pool(settings, url))
    if settings.api_pool_pre_ping and engine.dialect.name == "postgresql":
        ping_on_checkout(engine)
    return engine


def _single_read_engine(settings: Settings, url: str) -> AsyncEngine | None:
    """PostgreSQL: the engine of one-SELECT routes — autocommit, no pre-ping (the route retries
    on a dropped connection instead, see relove.api.routing); its own pool of the same size."""
    if make_url(url).get_backend_name() != "postgresql":
        return None
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=False,
                         pool_size=settings.api_pool_size)  # fmt: skip


def create_server_app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = _api_engine(settings, settings.database_url)
    sessions = create_session_factory(engine)
    closers = [engine.dispose]
    read_sessions = None
    if settings.database_read_url:  # lists, counts, dashboard and exports read the replica
        read_engine = _api_engine(settings, settings.database_read_url)
        read_sessions = create_session_factory(read_engine)
        closers.append(read_engine.dispose)
    single_reads = None
    single_read_engine = _single_read_engine(settings, settings.database_url)
    if single_read_engine is not None:
        single_reads = create_session_factory(single_read_engine)
        closers.append(single_read_engine.dispose)
    mounts: list[Mounted] = [console_mount(settings, sessions, read_sessions=read_sessions)]
    return create_app(settings, engine, sessions, mounts=mounts, closers=closers,
                      single_reads=single_reads)  # fmt: skip
