"""The import service: a source of rows in, a summary out.

``await import_rows(engine, source, ImportOptions(...), progress=…, errors=…)`` reads the
source in batches (constant memory; the next batch is parsed in a thread while the database
writes the current one), writes each batch in its own transaction through the database's
store, and returns an :class:`ImportSummary`. A batch the database refuses (a document over its
size limit after the merge) is split until the refusing rows are found; they are rejected, the
rest is written. A row is written whole or not at all.

History: a bulk import records ONE ``import.completed`` event (``user_id`` NULL) with its counts
instead of one ``marker.changed`` per key and user.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relove.bulk.base import BatchCounts, BatchStore, ImportMode, for_mode
from relove.bulk.errors_file import ErrorSink
from relove.bulk.readers import Source
from relove.bulk.rows import ImportRow, RowError
from relove.db.models import User
from relove.db.types import utcnow
from relove.errors import InvalidInput, ReloveError
from relove.events import EventSource, record
from relove.events.catalog import IMPORT_COMPLETED

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000
_DOC_FIELDS = ("username", "first_name", "last_name", "gender", "is_active", "markers", "context")


@dataclass(frozen=True, slots=True)
class ImportOptions:
    mode: ImportMode = ImportMode.merge
    #: count what would happen and show the first changes; write nothing
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    #: how many changes a dry run describes
    show_changes: int = 10
    #: how many rejected rows the summary lists (all of them go to the errors file)
    show_rejections: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 1_000_000:
            raise InvalidInput("the batch size must be between 1 and 1,000,000")


@dataclass(slots=True)
class Change:
    """One change a dry run found: ``fields`` maps a field to ``[old, new]``."""

    line: int
    id: int
    action: str  # create | update
    fields: dict[str, list[Any]]


@dataclass(slots=True)
class Rejection:
    line: int
    reason: str


@dataclass(slots=True)
class ImportProgress:
    rows: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class ImportSummary(ImportProgress):
    mode: str = ImportMode.merge.value
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def add(self, counts: BatchCounts) -> None:
        self.created += counts.created
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        self.skipped += counts.skipped

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged, "skipped": self.skipped, "rejected": self.rejected,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_per_second"] = round(self.rows_per_second, 1)
        return out


ProgressCallback = Callable[[ImportProgress], Awaitable[None] | None]


@dataclass(slots=True)
class _Batch:
    rows: list[ImportRow] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)
    raw: dict[int, list[str]] = field(default_factory=dict)
    rejected: list[tuple[int, RowError, list[str]]] = field(default_factory=list)
    records: int = 0
    bytes_read: int = 0
    last_line: int = 0
    done: bool = False


def store_for(engine: AsyncEngine, mode: ImportMode) -> BatchStore:
    if engine.dialect.name == "postgresql":
        from relove.bulk.postgres import PostgresStore

        return PostgresStore(mode)
    from relove.bulk.sqlite import SQLiteStore

    return SQLiteStore(mode)


class _Batches:
    """Cuts the source into batches of unique ids: a second row of a user starts a new batch,
    so rows apply in file order."""

    def __init__(self, source: Source, size: int) -> None:
        self.source = source
        self.size = size
        self.records: Iterator[Any] = source.records()
        self.carry: tuple[int, ImportRow | RowError, list[str]] | None = None

    def next(self) -> _Batch:
        batch = _Batch()
        while len(batch.rows) < self.size:
            if self.carry is not None:
                item, self.carry = self.carry, None
            else:
                try:
                    item = next(self.records)
                except StopIteration:
                    batch.done = True
                    break
            line, row, raw = item
            if isinstance(row, ImportRow) and row.id in batch.ids:
                self.carry = item
                break
            batch.records += 1
            batch.last_line = line
            if isinstance(row, RowError):
                batch.rejected.append((line, row, raw))
            else:
                batch.rows.append(row)
                batch.ids.add(row.id)
                batch.raw[row.id] = raw
        batch.bytes_read = self.source.bytes_read
        return batch


#: Tries of a batch the database aborted to break a deadlock (or a serialization failure).
MAX_ATTEMPTS = 5


def _is_conflict(e: DBAPIError) -> bool:
    code = getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None)
    return code in ("40P01", "40001")


def _db_reason(e: Exception) -> str:
    detail = str(getattr(e, "orig", None) or e)
    for doc, limit in (("markers", "64 KiB"), ("context", "256 KiB")):
        if f"ck_users_{doc}_size" in detail:
            return f"{doc} would exceed its size limit ({limit}) after the merge"
    return "the database refused the row: " + detail.strip().splitlines()[0][:200]


class _Importer:
    def __init__(
        self,
        engine: AsyncEngine,
        source: Source,
        options: ImportOptions,
        progress: ProgressCallback | None,
        errors: ErrorSink | None,
        actor: str | None,
        label: str | None,
    ) -> None:
        self.engine = engine
        self.actor = actor
        self.label = label
        self.source = source
        self.options = options
        self.progress = progress
        self.errors = errors
        self.store = store_for(engine, options.mode)
        self.summary = ImportSummary(
            mode=options.mode.value,
            dry_run=options.dry_run,
            bytes_total=source.bytes_total,
            ignored_columns=list(source.ignored),
        )
        self.started = time.monotonic()

    def reject(self, line: int, reason: str, raw: list[str]) -> None:
        self.summary.rejected += 1
        if len(self.summary.rejections) < self.options.show_rejections:
            self.summary.rejections.append(Rejection(line, reason))
        if self.errors is not None:
            self.errors.add(line, reason, raw)

    async def run(self) -> ImportSummary:
        batches = _Batches(self.source, self.options.batch_size)
        async with self.engine.connect() as conn:
            await self.store.prepare(conn)
            await conn.commit()
            pending = asyncio.create_task(asyncio.to_thread(batches.next))
            try:
                while True:
                    batch = await pending
                    if not batch.done:
                        pending = asyncio.create_task(asyncio.to_thread(batches.next))
                    await self._batch(conn, batch)
                    if batch.done:
                        break
            except BaseException as e:
                if not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
                if isinstance(e, Exception) and not self.options.dry_run:
                    await self._record(conn, stopped=str(e))
                raise
            self.summary.seconds = time.monotonic() - self.started
            if not self.options.dry_run:
                await self._record(conn)
        return self.summary

    async def _record(self, conn: AsyncConnection, *, stopped: str | None = None) -> None:
        """The import's one event (instead of one per user and key)."""
        props: dict[str, Any] = {
            "file": self.label, "format": self.source.format, "mode": self.options.mode.value,
            **self.summary.counts(), "seconds": round(time.monotonic() - self.started, 3),
        }  # fmt: skip
        if stopped is not None:
            if self.summary.created + self.summary.updated == 0:
                return  # nothing was written: nothing to tell
            props["stopped"] = stopped[:500]
        try:
            if conn.in_transaction():
                await conn.rollback()
            async with conn.begin():
                await record(
                    conn, None, IMPORT_COMPLETED, props,
                    source=EventSource.import_, actor=self.actor,
                )  # fmt: skip
        except Exception:
            if stopped is None:
                raise
            log.exception("could not record the stopped import")

    async def _batch(self, conn: AsyncConnection, batch: _Batch) -> None:
        for line, error, raw in batch.rejected:
            self.reject(line, str(error), raw)
        rows = [for_mode(r, self.options.mode) for r in batch.rows]
        if rows:
            try:
                await self._write(conn, rows, batch.raw)
            except ReloveError:
                raise
            except Exception as e:
                done = self.summary.created + self.summary.updated
                raise ReloveError(
                    f"import stopped near line {batch.last_line}: "
                    f"{str(getattr(e, 'orig', None) or e).strip().splitlines()[0]} "
                    f"({done} users written before it stay written)"
                ) from e
        self.summary.rows += batch.records
        self.summary.bytes_read = batch.bytes_read
        self.summary.seconds = time.monotonic() - self.started
        await self._report()

    async def _report(self) -> None:
        if self.progress is None:
            return
        snapshot = ImportProgress(**{f: getattr(self.summary, f) for f in _PROGRESS_FIELDS})
        result = self.progress(snapshot)
        if inspect.isawaitable(result):
            await result

    async def _write(
        self,
        conn: AsyncConnection,
        rows: list[ImportRow],
        raw: dict[int, list[str]],
        attempt: int = 1,
    ) -> None:
        """One transaction; on a refusal, split until the refused rows are found."""
        want_changes = (
            self.options.dry_run and len(self.summary.changes) < self.options.show_changes
        )
        trans = await conn.begin()
        try:
            before = await _snapshot(conn, rows) if want_changes else None
            counts = await self.store.apply(conn, rows, utcnow())
            if before is not None:
                self._changes(rows, before, await _snapshot(conn, rows))
        except DBAPIError as e:
            await trans.rollback()
            if _is_conflict(e) and attempt < MAX_ATTEMPTS:
                # Another writer (a touch batch) locked the same users in another order:
                # the database broke the tie by aborting this batch. Nothing of it was
                # written; try it again.
                log.info("import batch of %d rows hit a lock conflict; retrying", len(rows))
                await asyncio.sleep(random.uniform(0.05, 0.25) * attempt)
                await self._write(conn, rows, raw, attempt + 1)
                return
            if not isinstance(e, IntegrityError | DataError):
                raise
            if len(rows) == 1:
                self.reject(rows[0].line, _db_reason(e), raw.get(rows[0].id, []))
                return
            half = len(rows) // 2
            await self._write(conn, rows[:half], raw)
            await self._write(conn, rows[half:], raw)
            return
        except BaseException:
            await trans.rollback()
            raise
        if self.options.dry_run:
            await trans.rollback()
        else:
            await trans.commit()
        self.summary.add(counts)

    def _changes(
        self, rows: list[ImportRow], before: dict[int, dict[str, Any]], after: dict[int, dict]
    ) -> None:
        for row in rows:
            if len(self.summary.changes) >= self.options.show_changes:
                return
            new = after.get(row.id)
            if new is None:
                continue
            old = before.get(row.id)
            if old is None:
                fields = {k: [None, v] for k, v in new.items() if v not in (None, {})}
                self.summary.changes.append(Change(row.line, row.id, "create", fields))
            elif old != new:
                fields = {k: [old[k], new[k]] for k in new if old[k] != new[k]}
                self.summary.changes.append(Change(row.line, row.id, "update", fields))


_PROGRESS_FIELDS = tuple(ImportProgress.__dataclass_fields__)


async def _snapshot(conn: AsyncConnection, rows: list[ImportRow]) -> dict[int, dict[str, Any]]:
    t = User.__table__
    stmt = select(t.c.id, *(t.c[f] for f in _DOC_FIELDS)).where(t.c.id.in_([r.id for r in rows]))
    out = {}
    for r in await conn.execute(stmt):
        values = dict(r._mapping)
        values["gender"] = str(getattr(values["gender"], "value", values["gender"]))
        out[values.pop("id")] = values
    return out


async def import_rows(
    engine: AsyncEngine,
    source: Source,
    options: ImportOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    errors: ErrorSink | None = None,
    actor: str | None = None,
    label: str | None = None,
) -> ImportSummary:
    """Import every row of ``source``; see the module docstring. ``progress`` (sync or async)
    gets an :class:`ImportProgress` after each batch; ``errors`` receives each rejected row
    with its line number and reason. ``actor`` (who runs it: ``cli:<user>``, an API token's
    name, ``admin:<id>``) and ``label`` (the file's name) go into the ``import.completed``
    event."""
    importer = _Importer(
        engine, source, options or ImportOptions(), progress, errors, actor, label
    )
    return await importer.run()
