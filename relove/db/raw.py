"""ONE statement on a pooled asyncpg connection (PostgreSQL), without a session or a transaction
block — for the API's hottest requests (relove.api.lean), where the ORM session's machinery and
the ``BEGIN``/``COMMIT`` round trips cost more than the statement itself.

The statement is a SQLAlchemy statement, compiled once for the engine's dialect; its bound
values go through the same bind processors as in a session, and the connection carries
SQLAlchemy's codecs (jsonb decoded), so a row reads as the ORM's Core read gives it (enum columns
as their text). One statement runs in autocommit: it is its own transaction, atomic as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from relove.db.engine import ping_skipped

#: compiled statements kept per engine (oldest dropped first)
_MAX_COMPILED = 512


#: A compiled statement's parameters in order: each one's name and bind processor (None: the
#: value goes to the driver as it is).
Parameters = tuple[tuple[str, Callable[[Any], Any] | None], ...]


def compile_positional(stmt: ClauseElement, dialect: Dialect) -> tuple[str, Parameters]:
    """``stmt`` compiled for ``dialect`` (asyncpg: ``$1, $2 …``, a name used twice is one
    parameter) and its parameters in that order, for :func:`positional_args`."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    procs = cast(Mapping[str, Callable[[Any], Any]], compiled._bind_processors)
    return str(compiled), tuple((name, procs.get(name)) for name in compiled.positiontup or ())


def positional_args(parameters: Parameters, values: Mapping[str, Any]) -> list[Any]:
    """The driver's arguments for a statement from :func:`compile_positional`: each named
    value, through its bind processor."""
    return [p(values[n]) if p is not None else values[n] for n, p in parameters]


class RawStatements:
    """Runs compiled statements on ``engine``'s pool (see the module's docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("RawStatements needs PostgreSQL (asyncpg)")
        self.engine = engine
        self._compiled: dict[int, tuple[ClauseElement, str, Parameters]] = {}

    def _compile(self, stmt: ClauseElement) -> tuple[str, Parameters]:
        hit = self._compiled.get(id(stmt))
        if hit is not None and hit[0] is stmt:
            return hit[1], hit[2]
        sql, names = compile_positional(stmt, self.engine.dialect)
        if len(self._compiled) >= _MAX_COMPILED:
            # bounded: the entry keeps its statement alive, and callers' caches (e.g. one
            # statement per `fields=` list) may build new ones without end
            del self._compiled[next(iter(self._compiled))]
        self._compiled[id(stmt)] = (stmt, sql, names)
        return sql, names

    async def fetchrow(
        self, stmt: ClauseElement, params: Mapping[str, Any], *, read: bool = False
    ) -> Any:
        """The statement's first row (None: no row). ``stmt`` should be built once (it is
        compiled once per object).

        ``read=False``: the connection is checked out as any other (the pool's pre-ping when
        the engine has one). ``read=True`` (a statement that changes nothing): no pre-ping —
        a connection the database dropped is met by the statement itself, which then runs
        once more on a fresh connection."""
        sql, names = self._compile(stmt)
        args = positional_args(names, params)
        for attempt in (1, 2):
            if read:
                with ping_skipped():
                    conn = await self.engine.raw_connection()
            else:
                conn = await self.engine.raw_connection()
            driver = conn.driver_connection
            assert driver is not None
            try:
                row = await driver.fetchrow(sql, *args)
            except Exception as e:
                # a connection the database dropped (SQLAlchemy's own test for asyncpg)
                dropped = driver.is_closed()
                if dropped:
                    await greenlet_spawn(conn.invalidate, e)
                await greenlet_spawn(conn.close)
                if read and dropped and attempt == 1:
                    continue
                raise
            await greenlet_spawn(conn.close)
            return row
        raise AssertionError("unreachable")


def is_integrity_error(error: BaseException) -> bool:
    """The driver's error is an integrity constraint's (SQLSTATE class 23), as SQLAlchemy's
    ``IntegrityError`` would wrap it in a session."""
    return str(getattr(error, "sqlstate", "") or "").startswith("23")


def json_text(value: Any) -> str:
    """``value`` as JSON text for a statement's parameter (a batch's rows or items, decoded by
    the database): orjson, ~10× the standard encoder on them. What orjson refuses (an integer
    past 64 bits, a lone surrogate) goes through the standard encoder, so the text means what
    it did. For values without floats or with checked ones: orjson writes NaN as ``null``."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
