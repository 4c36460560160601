"""Is the database there? Telling an outage from a bug, and riding through one.

:func:`classify` sorts a failure into :attr:`Failure.outage` (the database is unreachable: a
dropped or refused connection, a server shutting down or starting up, a locked SQLite file,
an exhausted pool), :attr:`Failure.transient` (the database is fine but this attempt lost: a
deadlock or serialization failure) or ``None`` (a bug or bad data: retrying would not help).

:class:`DatabaseHealth` is the shared view of one engine's availability. Writers that hit an
outage report it and wait; one prober (a cheap statement, with backoff) wakes them when the
database answers again. It logs ONE warning when the database goes away and one when it is
back (with the outage's length and how many updates waited), and keeps counters a readiness
probe or metrics endpoint can read (:meth:`DatabaseHealth.state`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


class Failure(enum.Enum):
    outage = "outage"  #: the database is unreachable; wait until it answers again
    transient = "transient"  #: this attempt lost a race (deadlock …); retry soon


# PostgreSQL SQLSTATEs: connection exceptions (class 08), operator intervention (57P01 admin
# shutdown, 57P02 crash shutdown, 57P03 cannot connect now), insufficient resources (class 53).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03", "53")
_TRANSIENT_STATES = ("40001", "40P01")  # serialization failure, deadlock detected
# SQLite reports bugs (no such table, syntax) as OperationalError too: only these messages
# mean "the file is not available right now".
_SQLITE_OUTAGE = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
    "attempt to write a readonly database",
)
_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.", "sqlite3")


def classify(error: BaseException) -> Failure | None:
    """What kind of database failure ``error`` is, or ``None`` if it is not one we retry."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return Failure.outage
        return _classify_driver(error.orig) or _classify_driver(error.__cause__)
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return Failure.outage  # no connection could be had from the pool
    if isinstance(error, OSError | TimeoutError) and _raised_by_driver(error):
        return Failure.outage  # a refused / reset connect: SQLAlchemy passes these through
    return _classify_driver(error) if _raised_by_driver(error) else None


def _classify_driver(error: BaseException | None) -> Failure | None:
    for err in _chain(error):
        if isinstance(err, sqlite3.OperationalError):
            message = str(err).lower()
            return Failure.outage if message.startswith(_SQLITE_OUTAGE) else None
        state = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(state, str):
            if state.startswith(_OUTAGE_STATES):
                return Failure.outage
            if state in _TRANSIENT_STATES:
                return Failure.transient
        if isinstance(err, ConnectionError | TimeoutError):
            return Failure.outage
        module = type(err).__module__
        if module.startswith("asyncpg") and type(err).__name__ in (
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "ConnectionFailureError",
        ):
            return Failure.outage
    return None


def _chain(error: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen and len(seen) < 8:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _raised_by_driver(error: BaseException) -> bool:
    """Whether the traceback passes through the database layer (a bare ``OSError`` from a
    handler reading a file is not a database outage)."""
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def describe(error: BaseException) -> str:
    """One short line for a log: the driver's message without SQL or a traceback."""
    inner = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig else error
    message = " ".join(str(inner).split()) or type(inner).__name__
    return message[:200]


async def probe_engine(engine: AsyncEngine) -> None:
    """A cheap statement that fails while the database is unavailable. On SQLite it takes the
    write lock and gives it back (a plain SELECT succeeds while another process holds it)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text("UPDATE users SET id = id WHERE 0"))
            await conn.rollback()
        else:
            await conn.execute(text("SELECT 1"))


@dataclass(frozen=True)
class HealthState:
    """What a readiness probe reports (see :meth:`DatabaseHealth.state`)."""

    available: bool
    down_for: float | None  #: seconds since the current outage began
    outages: int  #: outages seen since start
    last_outage: float | None  #: length of the last finished outage, in seconds
    waiting: int  #: updates waiting for the database now
    dropped: int  #: updates dropped after RELOVE_DB_OUTAGE_GRACE since start
    last_error: str | None


class DatabaseHealth:
    """The availability of one database, shared by the bot's update pipeline.

    ``report_failure`` begins an outage (one warning, a prober task starts), ``report_success``
    ends it (one warning with its length and how many updates waited); ``wait_available``
    waits until the prober or a writer sees the database answer again.
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[None]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_delays: tuple[float, float] = (0.1, 1.0),
        name: str = "database",
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._delays = probe_delays
        self.name = name
        self._up = asyncio.Event()
        self._up.set()
        self._down_since: float | None = None
        self._prober: asyncio.Task[None] | None = None
        self.outages = 0
        self.last_outage: float | None = None
        self.waited = 0  #: updates held up by the current (or last) outage
        self.waiting = 0  #: updates retrying right now (the prober leaves ending it to them)
        self.dropped = 0
        self.last_error: str | None = None
        #: True when an update pipeline counts ``waited`` itself (else the touch writer does)
        self.counted_by_pipeline = False
        self._on_back: list[Callable[[], None]] = []
        self._on_down: list[Callable[[], None]] = []

    @classmethod
    def for_engine(cls, engine: AsyncEngine, **kwargs: Any) -> DatabaseHealth:
        return cls(lambda: probe_engine(engine), **kwargs)

    @property
    def available(self) -> bool:
        return self._down_since is None

    def state(self) -> HealthState:
        down_for = None if self._down_since is None else self._clock() - self._down_since
        return HealthState(
            self.available, down_for, self.outages, self.last_outage, self.waiting,
            self.dropped, self.last_error,
        )  # fmt: skip

    def on_back(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time an outage ends."""
        self._on_back.append(callback)

    def on_down(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time an outage begins."""
        self._on_down.append(callback)

    def report_failure(self, error: BaseException) -> None:
        """An operation failed because the database is unavailable."""
        self.last_error = describe(error)
        if self._down_since is None:
            self._down_since = self._clock()
            self.outages += 1
            self.waited = 0
            log.warning(
                "%s unavailable (%s): holding updates and retrying", self.name, self.last_error
            )
            for callback in self._on_down:
                callback()
        self._up.clear()
        if self._probe is not None and (self._prober is None or self._prober.done()):
            self._prober = asyncio.create_task(self._probe_until_up())

    def hold(self, count: int = 1) -> None:
        """``count`` updates begin to retry, waiting for the database."""
        self.waiting += count

    def count_waited(self, count: int) -> None:
        """``count`` more updates are held up by the current outage."""
        self.waited += count

    def release(self, count: int = 1) -> None:
        """``count`` waiting updates went through (or were dropped)."""
        self.waiting -= count

    def report_success(self) -> None:
        """An operation succeeded: the outage, if any, is over."""
        if self._down_since is None:
            return
        length = self._clock() - self._down_since
        self._down_since = None
        self.last_outage = length
        self._up.set()
        log.warning(
            "%s is back after %.1f s; %d updates waited for it", self.name, length, self.waited
        )
        for callback in self._on_back:
            callback()

    async def wait_available(self, timeout: float | None = None) -> bool:
        """Wait until the database may answer again (True) or ``timeout`` passes (False)."""
        if self._up.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout)
        return self._up.is_set()

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober

    async def _probe_until_up(self) -> None:
        assert self._probe is not None
        delay, cap = self._delays
        while self._down_since is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)
            try:
                await self._probe()
            except Exception as e:  # noqa: BLE001 - any failure means "not yet"
                if classify(e) is None:
                    log.debug("database probe failed: %s", describe(e))
                continue
            if self.waiting and self._down_since is not None:
                # Wake the waiters; the outage ends when one of them really succeeds (a
                # failure the probe cannot see keeps it going, without new log lines).
                self._up.set()
            else:
                self.report_success()
