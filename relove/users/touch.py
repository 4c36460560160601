"""Touch: every update refreshes its user in one atomic upsert, grouped per flush.

Touches are queued and written as ONE statement per batch: ``INSERT … ON CONFLICT (id) DO
UPDATE … RETURNING`` replaces the identity fields and ``last_seen_at`` and merges the
``context`` patch in SQL (``||`` on PostgreSQL, ``json_patch`` on SQLite), so nothing is read
and rewritten in Python. The batch travels as one bound JSON array unpacked by the database, so
a batch costs one round trip and almost no per-row work in Python. The same flush records the
touches' events (``message.received``, ``command.used``, ``button.pressed``, ``user.blocked`` /
``user.unblocked``, and ``user.created`` for rows the upsert inserted) and the conversation's
incoming messages: in the same statement on PostgreSQL (data-modifying CTEs), in the same
transaction on SQLite. On PostgreSQL that statement runs on the pooled connection's asyncpg
connection itself (one ``fetch`` per batch, no SQLAlchemy execution and result objects); the
bot builds each update's event rows directly (:func:`relove.events.updates.event_rows_of_update`)
and the batch documents are encoded once, with orjson.

A touch may also *stamp* rows of another room (:class:`Stamp`, the webhook inbox's
``touched_at``): the same statement (PostgreSQL) or transaction (SQLite) sets them, so the
touch's events and the record that they were written commit together or not at all.

Users are spread over lanes by id; a lane writes its batches one after another, so a user's
later touch is never written before an earlier one, while the lanes overlap the database's
latency. :meth:`TouchWriter.touch_many` queues a whole page of touches with one future per
lane (no await per update); :meth:`TouchWriter.touch` queues one.

Failures: a data error (a context at its size limit) is retried row by row, so one bad row
fails only its own touch. An operational error (the database is unreachable, see
:mod:`relove.db.health`) keeps the lane's batch and retries it when the database answers again,
before anything queued after it — so per-user order survives an outage — until each request's
deadline (``RELOVE_DB_OUTAGE_GRACE`` after it was queued) has passed; its touches then fail with
:class:`relove.errors.DatabaseUnavailable`. Any other error fails the batch at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import Dialect, TextClause, bindparam, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relove.db.health import DatabaseHealth, Failure, classify, describe
from relove.db.models import FrozenDocument, Gender, UserSnapshot
from relove.db.raw import compile_positional, json_text, positional_args
from relove.db.types import UTCDateTime, utcnow
from relove.errors import DatabaseUnavailable
from relove.events import NewEvent, batch_insert
from relove.events.catalog import USER_CREATED, EventSource
from relove.events.record import encode_rows

log = logging.getLogger(__name__)

_MICROSECOND = timedelta(microseconds=1)

#: How long a touch is retried through a database outage when nobody says otherwise.
DEFAULT_GRACE_S = 60.0
#: How long a lane keeps its connection after its queue ran dry: polling's next page usually
#: comes sooner, and a checkout costs the pool's liveness ping (round trips) every time.
DEFAULT_LINGER_S = 0.05


@dataclass(frozen=True)
class Stamp:
    """Rows a touch marks as done in its own statement or transaction:
    ``UPDATE <table> SET <column> = <the touch's time> WHERE <key> IN (<the touches' stamps>)``.
    The names are the product's own identifiers (never input)."""

    table: str
    key: str
    column: str

    def __post_init__(self) -> None:
        for name in (self.table, self.key, self.column):
            if not name.isidentifier():
                raise ValueError(f"not an SQL identifier: {name!r}")


class Touch:
    """What one update says about its user, and the events it records.

    ``last_message`` and ``is_active`` are ``None`` when the update says nothing about them
    (the stored value is kept). ``events`` as objects, or ``event_rows`` already as elements of
    the events batch array (:func:`relove.events.updates.event_rows_of_update`, what the bot
    builds per update). ``stamps``: keys of rows the writer's :class:`Stamp` marks in the same
    commit (e.g. the inbox update the touch comes from)."""

    __slots__ = (
        "user_id", "username", "first_name", "last_name", "last_message", "is_active", "events",
        "stamps", "event_rows",
    )  # fmt: skip

    def __init__(
        self,
        user_id: int,
        username: str | None,
        first_name: str | None,
        last_name: str | None,
        last_message: str | None = None,
        is_active: bool | None = None,
        events: Sequence[NewEvent] = (),
        stamps: tuple[int, ...] = (),
        event_rows: Sequence[list[Any]] = (),
    ) -> None:
        self.user_id = user_id
        self.username = username
        self.first_name = first_name
        self.last_name = last_name
        self.last_message = last_message
        self.is_active = is_active
        self.events = events
        self.stamps = stamps
        self.event_rows = event_rows

    def merged_with(self, later: Touch) -> Touch:
        """A touch saying what this one and a later one of the same user say together."""
        return Touch(
            later.user_id,
            later.username,
            later.first_name,
            later.last_name,
            self.last_message if later.last_message is None else later.last_message,
            self.is_active if later.is_active is None else later.is_active,
            (*self.events, *later.events) if self.events else later.events,
            (*self.stamps, *later.stamps) if self.stamps else later.stamps,
            (*self.event_rows, *later.event_rows) if self.event_rows else later.event_rows,
        )

    def __repr__(self) -> str:
        return (
            f"Touch(user_id={self.user_id!r}, last_message={self.last_message!r}, "
            f"is_active={self.is_active!r}, events={len(self.events) + len(self.event_rows)})"
        )


def _row(touch: Touch) -> list[Any]:
    """A touch in the batch document (the positions the statements below read)."""
    return [touch.user_id, touch.username, touch.first_name, touch.last_name, touch.last_message,
            touch.is_active]  # fmt: skip


# -- SQL ---------------------------------------------------------------------------------------
# Batch element: [0 id, 1 username, 2 first_name, 3 last_name, 4 last_message|null,
#                 5 is_active|null]. JSON documents come back as text (parsed lazily by
# FrozenDocument); no per-row processing.
_COLUMNS = (
    "id, username, first_name, last_name, is_active, gender, context, markers, created_at, "
    "updated_at, last_seen_at"
)
_RETURNING = (
    "users.id, users.username, users.first_name, users.last_name, users.is_active, "
    "users.gender, CAST(users.context AS TEXT) AS context, CAST(users.markers AS TEXT) AS markers, "
    "users.created_at, users.updated_at, users.last_seen_at"
)
# PostgreSQL's statement returns the columns up to created_at: updated_at and last_seen_at of
# every row it wrote are its :now (set so by both the insert and the update), known already.
_PG_RETURNING = _RETURNING.rsplit(", users.updated_at", 1)[0]
_PG_OUT = _COLUMNS.rsplit(", updated_at", 1)[0]

_ON_CONFLICT = """
ON CONFLICT (id) DO UPDATE SET
    username = excluded.username, first_name = excluded.first_name,
    last_name = excluded.last_name, last_seen_at = excluded.last_seen_at,
    updated_at = excluded.updated_at, context = {merge}{active}
"""

_PG_UPSERT = """INSERT INTO users (COLUMNS)
SELECT CAST(e ->> 0 AS bigint), e ->> 1, e ->> 2, e ->> 3,
       COALESCE(CAST(e ->> 5 AS boolean), true), 'unknown',
       CASE WHEN jsonb_typeof(e -> 4) = 'string'
            THEN jsonb_build_object('last_message', e -> 4) ELSE '{}'::jsonb END,
       '{}'::jsonb, t.now, t.now, t.now
FROM (SELECT CAST(:now AS timestamptz) AS now) AS t,
     jsonb_array_elements(CAST(:PARAM AS jsonb)) AS e"""

_SQLITE_UPSERT = """INSERT INTO users (COLUMNS)
SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]',
       COALESCE(value ->> '$[5]', 1), 'unknown',
       CASE WHEN json_type(value, '$[4]') = 'text'
            THEN json_object('last_message', value ->> '$[4]') ELSE '{}' END,
       '{}', t.now, t.now, t.now
FROM (SELECT :now AS now) AS t, json_each(:PARAM)
WHERE true"""

# user.created is dated a microsecond before the batch, so it sorts before the update's own
# events by time (the order in which a statement's CTEs take ids is not defined).
_PG_CREATED = """ev_created AS (
    INSERT INTO events (user_id, name, props, source, at)
    SELECT id, '{name}', '{{}}'::jsonb, '{source}',
           CAST(:now AS timestamptz) - interval '1 microsecond'
    FROM (SELECT id, created FROM up_plain UNION ALL SELECT id, created FROM up_active) AS up
    WHERE created)"""


_PG_STAMP = """stamped AS (
    UPDATE {table} SET {column} = CAST(:now AS timestamptz)
    WHERE {key} IN (SELECT CAST(value AS bigint)
                    FROM jsonb_array_elements_text(CAST(:stamps AS jsonb))))"""

_SQLITE_STAMP = """UPDATE {table} SET {column} = :now
WHERE {key} IN (SELECT value FROM json_each(:stamps))"""


def _upsert(dialect: str, *, sets_active: bool) -> str:
    """The upsert of one kind of rows (``sets_active``: rows that also write ``is_active``)."""
    if dialect == "postgresql":
        head, merge = _PG_UPSERT, "users.context || excluded.context"
    else:
        head, merge = _SQLITE_UPSERT, "json_patch(users.context, excluded.context)"
    active = ", is_active = excluded.is_active" if sets_active else ""
    param = "active" if sets_active else "plain"
    head = head.replace("COLUMNS", _COLUMNS).replace(":PARAM", ":" + param)
    return head + _ON_CONFLICT.format(merge=merge, active=active)


def _bind_now(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


def build_pg_statement(*, events: bool, stamp: Stamp | None = None) -> TextClause:
    """PostgreSQL: ONE statement per batch. Both kinds of rows are upserted by two CTEs (their
    users are disjoint: a batch holds one merged touch per user); with ``events`` the same
    statement inserts the touches' events and messages and a ``user.created`` per inserted row;
    with ``stamp`` it also stamps the touches' rows (``:stamps``, a JSON array of keys).
    Parameters: ``:plain``, ``:active`` (batch documents), ``:now``, ``:events``, ``:stamps``."""
    returning = f"RETURNING {_PG_RETURNING}, (xmax = 0) AS created"
    ctes = [
        f"up_plain AS ({_upsert('postgresql', sets_active=False)}{returning})",
        f"up_active AS ({_upsert('postgresql', sets_active=True)}{returning})",
    ]
    if events:
        created = _PG_CREATED.format(name=USER_CREATED, source=EventSource.bot.value)
        ctes = [*ctes, created, batch_insert("postgresql").ctes]
    if stamp is not None:
        ctes.append(_PG_STAMP.format(table=stamp.table, key=stamp.key, column=stamp.column))
    body = f"SELECT {_PG_OUT} FROM up_plain UNION ALL SELECT {_PG_OUT} FROM up_active"
    return _bind_now("WITH " + ",\n".join(ctes) + "\n" + body)


def build_sqlite_statements() -> tuple[TextClause, TextClause]:
    """SQLite: the upserts of plain and ``is_active`` rows, run in one transaction (with the
    events' inserts after them)."""
    returning = f"\nRETURNING {_RETURNING}"
    return (
        _bind_now(_upsert("sqlite", sets_active=False) + returning),
        _bind_now(_upsert("sqlite", sets_active=True) + returning),
    )


class _Positional:
    """A PostgreSQL statement run on the asyncpg connection itself: one batch is one
    ``fetch`` (no SQLAlchemy execution context, cursor adapter and result rows per batch),
    compiled once as :class:`relove.db.raw.RawStatements` compiles its statements.
    Errors of the data (a constraint, a bad value) are raised as SQLAlchemy's
    :class:`~sqlalchemy.exc.IntegrityError` / :class:`~sqlalchemy.exc.DataError`, as the
    SQLAlchemy path raises them; the rest (an unreachable server) as the driver raised them —
    :func:`relove.db.health.classify` knows both."""

    __slots__ = ("sql", "parameters")

    def __init__(self, statement: TextClause, dialect: Dialect) -> None:
        self.sql, self.parameters = compile_positional(statement, dialect)

    async def fetch(self, driver: Any, params: dict[str, Any]) -> list[Any]:
        try:
            return await driver.fetch(self.sql, *positional_args(self.parameters, params))
        except asyncpg.IntegrityConstraintViolationError as e:
            raise IntegrityError(self.sql, None, e) from e
        except asyncpg.DataError as e:
            raise DataError(self.sql, None, e) from e


def _sqlite_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


_GENDERS: dict[str, Gender] = {gender.value: gender for gender in Gender}


def _snapshot(row: Sequence[Any]) -> UserSnapshot:
    """A snapshot from a raw SQLite row (the touch statement's RETURNING columns)."""
    # One batch stamps every row with the same time: parse each distinct text once.
    created = _sqlite_time(row[8])
    updated = created if row[9] == row[8] else _sqlite_time(row[9])
    seen = updated if row[10] == row[9] else _sqlite_time(row[10])
    gender = row[5]
    return UserSnapshot(
        row[0], row[1], row[2], row[3], bool(row[4]), _GENDERS.get(gender) or Gender(gender),
        FrozenDocument(row[6]), FrozenDocument(row[7]), created, updated, seen,
    )  # fmt: skip


def _pg_snapshots(rows: Sequence[Any], now: datetime) -> dict[int, UserSnapshot]:
    """Snapshots from the PostgreSQL statement's rows (``updated_at`` and ``last_seen_at`` are
    the batch's ``now``: see ``_PG_RETURNING``), by user id."""
    make, genders = UserSnapshot._make, _GENDERS
    return {
        row[0]: make((
            row[0], row[1], row[2], row[3], bool(row[4]), genders.get(row[5]) or Gender(row[5]),
            FrozenDocument(row[6]), FrozenDocument(row[7]), row[8], now, now,
        ))
        for row in rows
    }  # fmt: skip


# -- the writer --------------------------------------------------------------------------------
Result = UserSnapshot | BaseException


class _Request:
    """Touches queued together (one update, or a lane's share of a page), with one future."""

    __slots__ = ("touches", "results", "future", "deadline", "held")

    def __init__(self, touches: list[Touch], future: asyncio.Future[list[Result]],
                 deadline: float) -> None:  # fmt: skip
        self.touches = touches
        self.results: list[Result | None] = [None] * len(touches)
        self.future = future
        self.deadline = deadline
        self.held = False  # counted as waiting for the database


class _Lane:
    """One queue and its flusher: the batches of a lane are written one after another, on one
    connection held while the lane has work and for ``linger`` seconds after (no pool
    checkout, nor its liveness ping, per batch or per page). A connection that failed is
    dropped; the retry takes a fresh one."""

    __slots__ = ("queue", "queued", "flusher", "conn", "driver", "waiter")

    def __init__(self) -> None:
        self.queue: list[_Request] = []
        self.queued = 0  # touches in the queue
        self.flusher: asyncio.Task[None] | None = None
        self.conn: AsyncConnection | None = None
        self.driver: Any = None  # PostgreSQL: conn's asyncpg connection
        self.waiter: asyncio.Future[None] | None = None  # set while the flusher lingers


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class TouchWriter:
    """Queues touches and writes them in batches, one statement (PostgreSQL) or transaction
    (SQLite) per batch; rides through database outages (see the module's docstring).

    ``stamp``: what the touches' ``stamps`` mark in the same commit. ``after_commit`` is
    called right after each batch committed (the crash tests' fault point,
    ``RELOVE_FAULT_KILL_AT=touch``). ``linger``: how long a lane that ran out of work keeps its
    connection for the next page (:meth:`close` gives them back at once)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 500,
        lanes: int | None = None,
        events: bool = True,
        health: DatabaseHealth | None = None,
        grace: float = DEFAULT_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        stamp: Stamp | None = None,
        after_commit: Callable[[], None] | None = None,
        linger: float = DEFAULT_LINGER_S,
    ) -> None:
        dialect = self._dialect = engine.dialect.name
        # One statement per batch is atomic by itself: on PostgreSQL it runs in autocommit
        # mode (one round trip instead of BEGIN, statement, COMMIT). SQLite has one writer,
        # so one lane; PostgreSQL overlaps a few.
        if dialect == "sqlite":
            self._engine = engine
            lanes = lanes or 1
        else:
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            lanes = lanes or 4
        self.records_events = events
        self.health = health or DatabaseHealth.for_engine(engine)
        self.grace = grace
        self._clock = clock
        self._max_batch = max_batch
        self._linger = linger
        self._closing = False
        self._lanes = [_Lane() for _ in range(lanes)]
        self._events = batch_insert(dialect)
        self.stamp = stamp
        self._after_commit = after_commit
        if dialect == "sqlite":
            self._sqlite = build_sqlite_statements()
            if stamp is not None:
                self._sqlite_stamp = text(_SQLITE_STAMP.format(
                    table=stamp.table, key=stamp.key, column=stamp.column,
                )).bindparams(bindparam("now", type_=UTCDateTime()))
        else:
            self._pg = _Positional(build_pg_statement(events=events), engine.dialect)
            if stamp is not None:  # only for batches with stamps: polling pays nothing
                self._pg_stamped = _Positional(build_pg_statement(events=events, stamp=stamp),
                                               engine.dialect)  # fmt: skip

    async def touch(self, touch: Touch, *, deadline: float | None = None) -> UserSnapshot:
        """Create or refresh the user; returns the fresh row as a read-only snapshot."""
        (result,) = await self.touch_many([touch], deadline=deadline)
        if isinstance(result, BaseException):
            raise result
        return result

    async def touch_many(
        self, touches: Sequence[Touch], *, deadline: float | None = None
    ) -> list[Result]:
        """Touch many users at once (e.g. a page of updates, in order); returns each touch's
        snapshot or the exception that failed it, in the same order. ``deadline`` (on the
        writer's clock) bounds retries through an outage; default: now + the grace."""
        if not touches:
            return []
        if deadline is None:
            deadline = self._clock() + self.grace
        loop = asyncio.get_running_loop()
        lanes = self._lanes
        if len(lanes) == 1 or len(touches) == 1:
            lane = lanes[touches[0].user_id % len(lanes)]
            future: asyncio.Future[list[Result]] = loop.create_future()
            self._enqueue(lane, _Request(list(touches), future, deadline))
            return await future
        parts: dict[int, list[int]] = {}
        for i, touch in enumerate(touches):
            parts.setdefault(touch.user_id % len(lanes), []).append(i)
        futures = []
        for lane_no, positions in parts.items():
            future = loop.create_future()
            self._enqueue(lanes[lane_no], _Request([touches[i] for i in positions], future,
                                                   deadline))  # fmt: skip
            futures.append(future)
        answers = await asyncio.gather(*futures)
        results: list[Result] = [None] * len(touches)  # type: ignore[list-item]
        for positions, answer in zip(parts.values(), answers, strict=True):
            for i, result in zip(positions, answer, strict=True):
                results[i] = result
        return results

    async def close(self) -> None:
        """Wait until every queued touch is written (or given up) and the lanes' connections
        are back in the pool."""
        self._closing = True
        try:
            # until no lane runs: a touch that arrives meanwhile on a lane already passed
            # starts a flusher there (which, while closing, does not linger)
            while any(lane.flusher is not None for lane in self._lanes):
                for lane in self._lanes:
                    while lane.flusher is not None:
                        if lane.waiter is not None:
                            _wake(lane.waiter)
                        await asyncio.shield(lane.flusher)
        finally:
            self._closing = False

    def _enqueue(self, lane: _Lane, request: _Request) -> None:
        lane.queue.append(request)
        lane.queued += len(request.touches)
        if lane.flusher is None:
            lane.flusher = asyncio.create_task(self._drain(lane))
        elif lane.waiter is not None:
            _wake(lane.waiter)

    async def _drain(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                while lane.queue:
                    batch: list[_Request] = []
                    size = 0
                    while lane.queue and (not batch or size + len(lane.queue[0].touches)
                                          <= self._max_batch):  # fmt: skip
                        request = lane.queue.pop(0)
                        batch.append(request)
                        size += len(request.touches)
                    lane.queued -= size
                    await self._flush(lane, batch)
                if lane.conn is not None and await self._lingered(lane):
                    continue  # the next page came: on the same connection
                await self._release(lane)  # touches queued meanwhile: once more round
        finally:
            if lane.conn is not None:  # stopped by an error or cancelled while writing
                await self._release(lane, failed=True)
            lane.flusher = None

    async def _lingered(self, lane: _Lane) -> bool:
        """Wait up to ``linger`` seconds for more work; True if some came."""
        if self._closing or self._linger <= 0:
            return False
        loop = asyncio.get_running_loop()
        waiter = lane.waiter = loop.create_future()
        timer = loop.call_later(self._linger, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            lane.waiter = None
        return bool(lane.queue)

    async def _connection(self, lane: _Lane) -> AsyncConnection:
        if lane.conn is None:
            lane.conn = await self._engine.connect()
        return lane.conn

    async def _driver_connection(self, lane: _Lane) -> Any:
        """The asyncpg connection under the lane's pooled one (PostgreSQL)."""
        if lane.driver is None:
            conn = await self._connection(lane)
            lane.driver = (await conn.get_raw_connection()).driver_connection
        return lane.driver

    async def _release(self, lane: _Lane, *, failed: bool = False) -> None:
        """Give the lane's connection back to the pool (``failed``: after an error — rolled
        back by the pool; a broken one is discarded by it)."""
        conn, lane.conn, lane.driver = lane.conn, None, None
        if conn is None:
            return
        try:
            if failed and self._dialect != "sqlite":
                # Its statements ran on the driver's connection, past SQLAlchemy's disconnect
                # handling: the pool cannot tell a broken one, so it is not given back.
                await conn.invalidate()
            await conn.close()
        except Exception as e:  # noqa: BLE001 - a broken connection: the pool drops it
            if not failed:
                log.debug("touch connection not closed cleanly: %s", describe(e))

    # -- one batch, retried through an outage ---------------------------------------------------
    async def _flush(self, lane: _Lane, batch: list[_Request]) -> None:
        attempt = 0
        try:
            while True:
                pending = [r for r in batch if not r.future.done()]
                merged, slots = _merge(pending)
                if not merged:
                    return
                try:
                    error = await self._write(lane, merged, slots)
                except Exception as e:  # noqa: BLE001 - classified below
                    error = e
                if error is not None:
                    await self._release(lane, failed=True)
                if error is None:
                    if self._after_commit is not None:
                        self._after_commit()
                    self.health.report_success()
                    return
                kind = classify(error)
                if kind is None:
                    log.error("touch of %d users failed: %s", len(merged), describe(error))
                    _fail(slots, error)
                    return
                attempt += 1
                if not await self._wait_to_retry(pending, error, kind, attempt):
                    return
        finally:
            for request in batch:
                if request.held:
                    self.health.release(len(request.touches))
                    request.held = False
                if not request.future.done():
                    request.future.set_result(
                        [r if r is not None else RuntimeError("touch not written")
                         for r in request.results]  # fmt: skip
                    )

    async def _wait_to_retry(
        self, pending: list[_Request], error: BaseException, kind: Failure, attempt: int
    ) -> bool:
        """After a retryable failure: give up the requests past their deadline, then wait
        until a retry may succeed. False when nothing is left to retry."""
        if kind is Failure.outage:
            self.health.report_failure(error)
        for request in pending:
            if not request.held:
                request.held = True
                self.health.hold(len(request.touches))
                if not self.health.counted_by_pipeline:
                    self.health.count_waited(len(request.touches))
        now = self._clock()
        live = []
        for request in pending:
            if request.deadline <= now:
                gone = DatabaseUnavailable(
                    f"the database stayed unavailable for {self.grace:g} s "
                    f"(RELOVE_DB_OUTAGE_GRACE): {describe(error)}"
                )
                request.results = [r if r is not None else gone for r in request.results]
                request.future.set_result(request.results)  # type: ignore[arg-type]
            else:
                live.append(request)
        if not live:
            return False
        wait = min(r.deadline for r in live) - now
        if kind is Failure.outage:
            await self.health.wait_available(timeout=wait)
        else:
            await asyncio.sleep(min(wait, 0.05 * 2 ** min(attempt, 5) * random.random()))
        return True

    async def _write(
        self, lane: _Lane, merged: dict[int, Touch], slots: dict[int, list[tuple[_Request, int]]]
    ) -> BaseException | None:
        """Write the batch; fill the slots. Returns the error that stopped it, if any."""
        try:
            users = await self._execute(lane, list(merged.values()))
        except (IntegrityError, DataError):
            # One bad row (e.g. a context at its size limit) must not fail everyone's touch:
            # write them one by one.
            log.warning("touch of %d users failed; retrying one by one", len(merged))
            await self._release(lane, failed=True)
            return await self._write_one_by_one(lane, merged, slots)
        _fill(slots, users)
        return None

    async def _write_one_by_one(
        self, lane: _Lane, merged: dict[int, Touch], slots: dict[int, list[tuple[_Request, int]]]
    ) -> BaseException | None:
        for user_id, touch in merged.items():
            try:
                users = await self._execute(lane, [touch])
            except (IntegrityError, DataError) as e:
                await self._release(lane, failed=True)
                log.error("touch of user %s failed: %s", user_id, describe(e))
                _fail({user_id: slots[user_id]}, e)
                continue
            except Exception as e:  # noqa: BLE001 - the rows written so far are done
                return e
            _fill({user_id: slots[user_id]}, users)
        return None

    async def _execute(self, lane: _Lane, touches: list[Touch]) -> dict[int, UserSnapshot]:
        plain = [_row(t) for t in touches if t.is_active is None]
        active = [_row(t) for t in touches if t.is_active is not None]
        now = utcnow()
        if self._dialect == "sqlite":
            return await self._execute_sqlite(lane, touches, plain, active, now)
        params: dict[str, Any] = {
            "plain": json_text(plain), "active": json_text(active), "now": now
        }
        if self.records_events:
            params["events"] = self._encode_events(touches, (), now)
        statement = self._pg
        stamps = self._stamps_of(touches)
        if stamps:
            statement = self._pg_stamped
            params["stamps"] = json.dumps(stamps)
        driver = await self._driver_connection(lane)
        return _pg_snapshots(await statement.fetch(driver, params), now)

    async def _execute_sqlite(
        self, lane: _Lane, touches: list[Touch], plain: list[list[Any]], active: list[list[Any]],
        now: datetime,
    ) -> dict[int, UserSnapshot]:  # fmt: skip
        users: dict[int, UserSnapshot] = {}
        conn = await self._connection(lane)
        for stmt, param, rows in zip(self._sqlite, ("plain", "active"), (plain, active),
                                     strict=True):  # fmt: skip
            if rows:
                result = await conn.execute(stmt, {param: json_text(rows), "now": now})
                for row in result:
                    users[row[0]] = _snapshot(row)
        if self.records_events:
            created = [uid for uid, user in users.items() if user.created_at == now]
            params = {"events": self._encode_events(touches, created, now), "now": now}
            for stmt in self._events.statements:
                await conn.execute(stmt, params)
        stamps = self._stamps_of(touches)
        if stamps:
            await conn.execute(self._sqlite_stamp, {"stamps": json.dumps(stamps), "now": now})
        await conn.commit()
        return users

    def _stamps_of(self, touches: Iterable[Touch]) -> list[int]:
        stamps = [key for touch in touches for key in touch.stamps]
        if stamps and self.stamp is None:
            raise RuntimeError("touches carry stamps but the writer has no Stamp")
        return stamps

    def _encode_events(
        self, touches: Iterable[Touch], created: Iterable[int], now: datetime
    ) -> str:
        before = now - _MICROSECOND  # as on PostgreSQL: sorts before the update's own events
        # Built by the product from bounded values (relove.events.updates): no checks needed.
        rows = self._events.rows([NewEvent(uid, USER_CREATED, {}, at=before) for uid in created],
                                 source=EventSource.bot, check=False)  # fmt: skip
        objects = False  # events given as objects may carry any props: the standard encoder
        for touch in touches:
            if touch.events:
                objects = True
                rows += self._events.rows(touch.events, source=EventSource.bot, check=False)
            if touch.event_rows:
                rows += touch.event_rows
        return encode_rows(rows) if objects else json_text(rows)


def _merge(
    requests: list[_Request],
) -> tuple[dict[int, Touch], dict[int, list[tuple[_Request, int]]]]:
    """One touch per user (later ones win), and where each user's result goes. Touches whose
    result is already known (written row by row before a failure) are left out."""
    merged: dict[int, Touch] = {}
    slots: dict[int, list[tuple[_Request, int]]] = {}
    for request in requests:
        for i, touch in enumerate(request.touches):
            if request.results[i] is not None:
                continue
            user_id = touch.user_id
            known = merged.get(user_id)
            if known is None:
                merged[user_id] = touch
                slots[user_id] = [(request, i)]
            else:
                merged[user_id] = known.merged_with(touch)
                slots[user_id].append((request, i))
    return merged, slots


def _fill(slots: dict[int, list[tuple[_Request, int]]], users: dict[int, UserSnapshot]) -> None:
    for user_id, places in slots.items():
        user = users.get(user_id)
        result: Result = (
            user if user is not None else RuntimeError(f"touch of user {user_id} returned no row")
        )
        for request, i in places:
            request.results[i] = result


def _fail(slots: dict[int, list[tuple[_Request, int]]], error: BaseException) -> None:
    for places in slots.values():
        for request, i in places:
            request.results[i] = error
