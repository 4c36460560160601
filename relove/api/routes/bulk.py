"""Bulk import and export: ``POST /imports`` (a CSV or JSONL upload run as a background job,
as ``relove users import`` runs it), ``GET /imports[/{id}]`` (progress, then the summary), the
rejected rows as a CSV file, and ``GET /users:export`` (streamed, as ``relove users export``).
The work is the bulk room's (relove.bulk.jobs / relove.bulk.export); these routes only carry it.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from relove.api.deps import ApiContext, ContextDep, SessionDep, reader, writer
from relove.api.routing import ApiRoute
from relove.api.schemas import decode_id_cursor, encode_id_cursor
from relove.api.tokens import Principal
from relove.bulk.export import ExportOptions, export_users
from relove.bulk.jobs import (
    ImportJobOptions,
    create_import_job,
    errors_file,
    get_import_job,
    job_dict,
    list_import_jobs,
    run_import_job,
)
from relove.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)
router = APIRouter(route_class=ApiRoute, tags=["import and export"])

#: uploads stay in memory up to this size, then spill to a temporary file
SPOOL_BYTES = 1 << 20
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines",
               "application/x-jsonlines", "application/json")  # fmt: skip
JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The import job's id.")]
Format = Literal["csv", "jsonl"]


class ImportJob(BaseModel):
    """An import job: ``queued`` → ``running`` (``rows``, ``progress``) → ``completed`` (with
    ``summary``) or ``failed`` (with ``error``)."""

    id: int
    status: Literal["queued", "running", "completed", "failed"]
    file_name: str
    format: str
    options: dict[str, Any]
    rows: int
    bytes_read: int
    bytes_total: int | None = None
    progress: float | None = Field(None, description="Share of the file read, 0 to 1.")
    summary: dict[str, Any] | None = Field(
        None, description="created, updated, skipped, rejected, … (as the CLI prints)."
    )
    error: str | None = None
    has_errors_file: bool = Field(description="Rejected rows can be downloaded (`/errors`).")
    actor: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None


class ImportJobList(BaseModel):
    jobs: list[ImportJob]
    next_cursor: str | None = None


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file itself as the body (`curl --data-binary @users.csv`): CSV "
        "with a header row, or JSON Lines (one object per line).",
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _format_of(request: Request, fmt: Format | None, file_name: str | None) -> Format | None:
    """The explicit ``format``, else the Content-Type's, else None (the file name decides)."""
    if fmt is not None:
        return fmt
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in JSONL_TYPES:
        return "jsonl"
    if ctype in ("text/csv", "application/csv", "text/tab-separated-values"):
        return "csv"
    return None


def _check_plain(name: str, value: str | None) -> None:
    """Option values are stored with the job: no control characters."""
    if value is not None and not value.isprintable():
        raise InvalidInput(f"{name} {value[:40]!r} contains control characters")


async def _spool(request: Request) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(SPOOL_BYTES)
    async for chunk in request.stream():
        if chunk:
            spool.write(chunk)
    spool.seek(0)
    return spool


async def _run(ctx: ApiContext, job_id: int) -> None:
    try:
        await run_import_job(ctx.engine, ctx.settings.bulk_dir, job_id)
    except asyncio.CancelledError:
        raise
    except Exception:  # the job row records the failure; the server goes on
        log.warning("import job %s failed", job_id, exc_info=True)


def _start_later(ctx: ApiContext, job_id: int) -> BackgroundTask:
    """Start the job once the response is out (its row is committed by then)."""

    async def start() -> None:
        task = asyncio.create_task(_run(ctx, job_id), name=f"relove-import-{job_id}")
        ctx.tasks.add(task)
        task.add_done_callback(ctx.tasks.discard)

    return BackgroundTask(start)


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportJob,
    summary="Import users from a CSV or JSONL upload (a background job)",
    description="Checks the options, the header and the encoding at once (422), stores the "
    "file and answers 202 with the queued job; poll `GET /imports/{id}`. Columns, modes and "
    "the errors file are those of `relove users import` (docs/bulk.md).",
    openapi_extra=_UPLOAD_BODY,
)
async def create_import(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    principal: Annotated[Principal, writer("users:write")],
    mode: Annotated[Literal["create", "merge", "overwrite"], Query(
        description="create: new users only; merge: set the given fields; overwrite: a "
        "given document replaces the user's.")] = "merge",  # fmt: skip
    dry_run: Annotated[bool, Query(description="Check every row, write nothing.")] = False,
    format: Annotated[Format | None, Query(
        description="Default: from Content-Type, else the file name.")] = None,  # fmt: skip
    file_name: Annotated[str | None, Query(max_length=200)] = None,
    encoding: Annotated[str | None, Query(max_length=40)] = None,
    delimiter: Annotated[str | None, Query(min_length=1, max_length=1)] = None,
    types: Annotated[str | None, Query(
        max_length=2000, description="Column types, e.g. `score=int,vip=bool`.")] = None,
) -> Response:
    for name, value in (("file_name", file_name), ("encoding", encoding), ("types", types)):
        _check_plain(name, value)
    if delimiter is not None and (delimiter in '"\r\n' or
                                  (not delimiter.isprintable() and delimiter != "\t")):
        raise InvalidInput(f"delimiter {delimiter!r}: expected a printable character or a tab")
    options = ImportJobOptions(
        mode=mode, dry_run=dry_run, format=_format_of(request, format, file_name),
        encoding=encoding, delimiter=delimiter,
        types=[t.strip() for t in (types or "").split(",") if t.strip()],
    )  # fmt: skip
    spool = await _spool(request)
    with spool:
        if not spool.read(1):
            raise InvalidInput("the upload is empty: send the file as the request body")
        spool.seek(0)
        try:
            job = await create_import_job(
                session, ctx.settings.bulk_dir, spool, file_name or "upload", options,
                actor=principal.actor,
            )  # fmt: skip
        except UnicodeError as e:
            raise InvalidInput(f"the upload cannot be read as {encoding or 'text'}: {e}") from e
    await session.refresh(job)
    return JSONResponse(job_dict(job), status_code=202, background=_start_later(ctx, job.id))


@router.get("/imports", response_model=ImportJobList, summary="List import jobs (newest first)")
async def list_imports(
    session: SessionDep,
    _: Annotated[Principal, reader("users:read")],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    before = decode_id_cursor("j", cursor) if cursor else None
    jobs = await list_import_jobs(session, limit=limit, before_id=before)
    body: dict[str, Any] = {"jobs": [job_dict(j) for j in jobs]}
    if len(jobs) == limit:
        body["next_cursor"] = encode_id_cursor("j", jobs[-1].id)
    return JSONResponse(body)


@router.get("/imports/{job_id}", response_model=ImportJob, summary="An import job's progress")
async def get_import(
    job_id: JobId,
    session: SessionDep,
    _: Annotated[Principal, reader("users:read")],
) -> Response:
    return JSONResponse(job_dict(await get_import_job(session, job_id)))


@router.get(
    "/imports/{job_id}/errors",
    summary="The rejected rows as CSV (line, reason, the row as read)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "The errors file."}},
)
async def get_import_errors(
    job_id: JobId,
    session: SessionDep,
    ctx: ContextDep,
    _: Annotated[Principal, reader("users:read")],
) -> Response:
    job = await get_import_job(session, job_id)
    path = errors_file(ctx.settings.bulk_dir, job)
    if path is None or not path.is_file():
        raise NotFound(f"import job {job_id} has no errors file")
    return FileResponse(path, media_type="text/csv; charset=utf-8",
                        filename=f"import-{job_id}-errors.csv")  # fmt: skip


@router.get(
    "/users:export",
    summary="Export users as CSV or JSONL (streamed)",
    description="The rows of `relove users export`: `columns` takes id, username, "
    "first_name, last_name, gender, is_active, created_at, updated_at, last_seen_at, "
    "markers, markers.*, markers.<key>, markers.<key>[], context, context.*, context.<key>. "
    "A bad filter or column is a 422 before anything is sent.",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                 "application/x-ndjson": {"schema": {"type": "string"}}},
                     "description": "The export, streamed."}},
)
async def export(
    ctx: ContextDep,
    _: Annotated[Principal, reader("users:read")],
    filter_text: Annotated[str | None, Query(alias="filter", max_length=10_000)] = None,
    format: Annotated[Format, Query()] = "csv",
    columns: Annotated[str | None, Query(max_length=5000)] = None,
) -> Response:
    names = tuple(c.strip() for c in (columns or "").split(",") if c.strip())
    flt = filter_text if filter_text and filter_text.strip() else None
    options = ExportOptions(format=format, fields=names or None, filter=flt)
    chunks = export_users(ctx.engine, options)
    try:  # the first chunk: a bad filter or column fails here, before the 200 is sent
        first = await anext(chunks)
    except StopAsyncIteration:
        first = ""

    async def body() -> AsyncIterator[str]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"users.{format}"
    return StreamingResponse(body(), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
