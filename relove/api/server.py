"""``relove serve``'s app factory: uvicorn calls :func:`create_server_app` in each worker
process, which is that process's ``main()`` — it loads the settings, builds the engine and
session factory and passes them down."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import make_url

from relove.api.app import Mounted, create_app
from relove.config import Settings, load_settings
from relove.db.engine import create_engine, create_session_factory
from relove.ops.logs import configure_logging
from relove.web.app import console_mount


def _pool(settings: Settings, url: str) -> dict[str, Any]:
    """The API's pool options (PostgreSQL; SQLite keeps its own pool)."""
    if make_url(url).get_backend_name() != "postgresql":
        return {}
    return {"pool_pre_ping": settings.api_pool_pre_ping, "pool_size": settings.api_pool_size}


def create_server_app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = create_engine(settings.database_url, **_pool(settings, settings.database_url))
    sessions = create_session_factory(engine)
    closers = [engine.dispose]
    read_sessions = None
    if settings.database_read_url:  # lists, counts, dashboard and exports read the replica
        read_engine = create_engine(
            settings.database_read_url, **_pool(settings, settings.database_read_url)
        )
        read_sessions = create_session_factory(read_engine)
        closers.append(read_engine.dispose)
    mounts: list[Mounted] = [console_mount(settings, sessions, read_sessions=read_sessions)]
    return create_app(settings, engine, sessions, mounts=mounts, closers=closers)
