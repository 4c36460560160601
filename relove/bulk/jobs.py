"""Import jobs: an upload from the API or the console, run in the background, with progress.

The HTTP side is thin::

    job = await create_import_job(session, settings.bulk_dir, upload.file, upload.filename,
                                  ImportJobOptions(mode="merge"), actor="api:crm")
    await session.commit()                          # 202 + the job (a bad header is a 400 already)
    asyncio.create_task(run_import_job(engine, settings.bulk_dir, job.id))
    ...
    await get_import_job(session, job_id)           # progress, then the summary
    errors_file(settings.bulk_dir, job)             # the rejected rows, to download

Files live in ``bulk_dir/<job id>/``: the upload as ``input`` and, when rows were rejected,
``errors.csv``. A job whose process died stops sending heartbeats;
:func:`fail_interrupted_jobs` marks it failed (its committed batches stay written, like an
interrupted CLI import).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from relove.bulk.base import ImportMode
from relove.bulk.columns import parse_types
from relove.bulk.errors_file import ErrorsFile
from relove.bulk.importer import ImportOptions, ImportProgress, ImportSummary, import_rows
from relove.bulk.models import FILE_NAME_MAX, BulkJob
from relove.bulk.readers import Format, guess_format, open_source
from relove.db.types import utcnow
from relove.errors import InvalidInput, NotFound, ReloveError

#: Seconds between two progress writes of a running job.
PROGRESS_EVERY = 1.0
#: A running job without a heartbeat for this long was interrupted.
STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ImportJobOptions:
    mode: str = ImportMode.merge.value
    dry_run: bool = False
    format: Format | None = None  # default: from the file name
    encoding: str | None = None
    delimiter: str | None = None
    #: ``["score=int", "vip=bool"]`` as ``--types`` takes them
    types: list[str] = field(default_factory=list)

    def checked(self) -> ImportJobOptions:
        try:
            ImportMode(self.mode)
        except ValueError:
            modes = ", ".join(m.value for m in ImportMode)
            raise InvalidInput(f"unknown mode {self.mode!r}; expected one of {modes}") from None
        if self.format not in (None, "csv", "jsonl"):
            raise InvalidInput(f"unknown format {self.format!r}; expected csv or jsonl")
        parse_types(self.types)
        return self


def job_dir(bulk_dir: Path, job_id: int) -> Path:
    return Path(bulk_dir) / str(job_id)


def errors_file(bulk_dir: Path, job: BulkJob) -> Path | None:
    """The job's errors file (line, reason, the row as read), when rows were rejected."""
    return job_dir(bulk_dir, job.id) / "errors.csv" if job.has_errors_file else None


def job_dict(job: BulkJob) -> dict[str, Any]:
    """A job as JSON-ready values (for the API and the console)."""
    return {
        "id": job.id, "status": job.status, "file_name": job.file_name, "format": job.format,
        "options": dict(job.options), "rows": job.rows, "bytes_read": job.bytes_read,
        "bytes_total": job.bytes_total,
        "progress": round(job.bytes_read / job.bytes_total, 4) if job.bytes_total else None,
        "summary": job.summary, "error": job.error, "has_errors_file": job.has_errors_file,
        "actor": job.actor,
        **{k: (v.isoformat() if v else None) for k, v in (
            ("created_at", job.created_at), ("started_at", job.started_at),
            ("finished_at", job.finished_at), ("heartbeat_at", job.heartbeat_at))},
    }  # fmt: skip


def _open(path: Path, fmt: Format, options: ImportJobOptions) -> tuple[IO[bytes], Any]:
    stream = path.open("rb")
    try:
        source = open_source(
            stream, format=fmt, size=path.stat().st_size, encoding=options.encoding,
            delimiter=options.delimiter, types=parse_types(options.types),
        )  # fmt: skip
    except BaseException:
        stream.close()
        raise
    return stream, source


async def create_import_job(
    session: AsyncSession,
    bulk_dir: Path,
    upload: IO[bytes],
    file_name: str,
    options: ImportJobOptions | None = None,
    *,
    actor: str | None = None,
) -> BulkJob:
    """Store the upload and queue a job for it (in the caller's transaction). A bad option,
    header or encoding raises :class:`InvalidInput` at once and stores nothing."""
    options = (options or ImportJobOptions()).checked()
    name = Path(str(file_name or "upload")).name[:FILE_NAME_MAX] or "upload"
    fmt: Format = options.format or guess_format(name)
    job = BulkJob(
        file_name=name, format=fmt, options=asdict(options), actor=actor, status="queued",
        kind="import", rows=0, bytes_read=0, has_errors_file=False,
    )  # fmt: skip
    session.add(job)
    await session.flush()
    directory = job_dir(bulk_dir, job.id)
    try:
        size = await asyncio.to_thread(_store, upload, directory / "input")
        job.bytes_total = size
        stream, _ = await asyncio.to_thread(_open, directory / "input", fmt, options)
        stream.close()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    await session.flush()
    return job


def _store(upload: IO[bytes], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        shutil.copyfileobj(upload, out, 1 << 20)
        return out.tell()


async def get_import_job(session: AsyncSession, job_id: int) -> BulkJob:
    job = await session.get(BulkJob, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"import job {job_id} not found")
    return job


async def list_import_jobs(
    session: AsyncSession, *, limit: int = 20, before_id: int | None = None
) -> list[BulkJob]:
    """The newest jobs first; page with ``before_id`` (the last id seen)."""
    stmt = select(BulkJob).order_by(BulkJob.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(BulkJob.id < before_id)
    return list((await session.scalars(stmt)).all())


async def run_import_job(engine: AsyncEngine, bulk_dir: Path, job_id: int) -> ImportSummary:
    """Run a queued job to its end; the job row says how it went (a failure is recorded
    there and raised)."""
    t = BulkJob.__table__
    async with engine.begin() as conn:
        claimed = await conn.execute(
            update(t).where(t.c.id == job_id, t.c.status == "queued")
            .values(status="running", started_at=utcnow(), heartbeat_at=utcnow())
            .returning(t.c.file_name, t.c.format, t.c.options, t.c.actor)
        )  # fmt: skip
        row = claimed.first()
    if row is None:
        raise InvalidInput(f"import job {job_id} is not queued")
    file_name, fmt, raw_options, actor = row
    options = ImportJobOptions(**raw_options)
    directory = job_dir(bulk_dir, job_id)
    last = [0.0]

    async def progress(p: ImportProgress) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY:
            return
        last[0] = now
        async with engine.begin() as conn:
            await conn.execute(
                update(t).where(t.c.id == job_id)
                .values(rows=p.rows, bytes_read=p.bytes_read, heartbeat_at=utcnow())
            )  # fmt: skip

    errors: ErrorsFile | None = None
    try:
        stream, source = await asyncio.to_thread(_open, directory / "input", fmt, options)
        with stream:
            if not options.dry_run:
                errors = ErrorsFile(
                    directory / "errors.csv", source.errors_header,
                    encoding=source.encoding, bom=source.bom,
                )  # fmt: skip
            summary = await import_rows(
                engine, source,
                ImportOptions(mode=ImportMode(options.mode), dry_run=options.dry_run),
                progress=progress, errors=errors, actor=actor, label=file_name,
            )  # fmt: skip
    except Exception as e:
        message = str(e) if isinstance(e, ReloveError) else f"{type(e).__name__}: {e}"
        async with engine.begin() as conn:
            await conn.execute(
                update(t).where(t.c.id == job_id).values(
                    status="failed", error=message.splitlines()[0][:1000] if message else "",
                    finished_at=utcnow(), has_errors_file=bool(errors and errors.count),
                )
            )  # fmt: skip
        raise
    finally:
        if errors is not None:
            errors.close()
    async with engine.begin() as conn:
        await conn.execute(
            update(t).where(t.c.id == job_id).values(
                status="completed", rows=summary.rows, bytes_read=summary.bytes_read,
                summary=summary.to_dict(), finished_at=utcnow(), heartbeat_at=utcnow(),
                has_errors_file=bool(errors and errors.count),
            )
        )  # fmt: skip
    return summary


async def fail_interrupted_jobs(
    session: AsyncSession, *, stale_after: timedelta = STALE_AFTER
) -> int:
    """Mark running jobs without a recent heartbeat failed (their process died); returns how
    many. Run it when a server starts."""
    t = BulkJob.__table__
    result = await session.execute(
        update(t).where(t.c.status == "running", t.c.heartbeat_at < utcnow() - stale_after)
        .values(status="failed", error="interrupted (the process running it stopped)",
                finished_at=utcnow())
    )  # fmt: skip
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
