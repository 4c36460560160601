"""Engine and session factory, built once in ``main()`` and passed down."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from relove.db import sqlite_functions, uow

SQLITE_BUSY_TIMEOUT_S = 30


def _json_dumps(value: Any) -> str:
    # Keep Unicode as is: readable in SQLite and measured the same as on PostgreSQL.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` / ``sqlite:///`` URLs get the async drivers the product uses."""
    sa_url = make_url(url)
    if sa_url.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        sa_url = sa_url.set(drivername="postgresql+asyncpg")
    elif sa_url.drivername in ("sqlite", "sqlite+pysqlite"):
        sa_url = sa_url.set(drivername="sqlite+aiosqlite")
    return sa_url.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` with the product's settings for its backend.

    SQLite runs in WAL mode (readers never block the writer) and waits for the write lock
    instead of failing. Transactions begin with a plain deferred ``BEGIN`` emitted by
    SQLAlchemy, so a session that only reads holds no lock while its handler talks to
    Telegram; a unit that reads before it writes begins with ``BEGIN IMMEDIATE`` instead
    (:func:`relove.db.uow.begin_write`).
    """
    sa_url = make_url(normalise_url(url))
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    if sa_url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        options.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    options.update(kwargs)
    engine = create_async_engine(sa_url, **options)
    if sa_url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()
        sqlite_functions.register(dbapi_connection, record.info)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_statement(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sqlite_functions.start_statement(conn.connection.info)
        uow.track_statement(conn, statement)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Deferred unless the unit declared it will write (relove.db.uow.begin_write).
        immediate = uow.wants_immediate(conn)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        uow.began(conn, immediate=immediate)


_PING_SKIPPED: ContextVar[bool] = ContextVar("relove_ping_skipped", default=False)


@contextlib.contextmanager
def ping_skipped() -> Iterator[None]:
    """Connections checked out inside skip :func:`ping_on_checkout`'s ping — for a caller that
    runs again on a fresh connection when it meets a dropped one (a read)."""
    token = _PING_SKIPPED.set(True)
    try:
        yield
    finally:
        _PING_SKIPPED.reset(token)


def ping_on_checkout(engine: AsyncEngine) -> None:
    """Check each pooled PostgreSQL (asyncpg) connection as it leaves the pool with ONE round
    trip — ``SELECT 1`` in the simple query protocol, safe through pgbouncer in transaction
    mode — instead of ``pool_pre_ping``'s three (``BEGIN; SELECT; ROLLBACK``). A connection that
    fails it is discarded and the pool hands out another (SQLAlchemy's disconnect handling), so
    no request fails after a database restart or failover. Use it with ``pool_pre_ping=False``.
    """

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _ping(_dbapi_connection: Any, _record: Any, proxy: Any) -> None:
        if _PING_SKIPPED.get():
            return
        try:
            await_(proxy.driver_connection.execute("SELECT 1"))
        except Exception as e:  # any failure: the connection is not to be trusted
            raise DisconnectionError(f"pooled connection failed its ping: {e}") from e


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
