"""Import jobs and the export over HTTP: upload → 202 queued → completed with a summary and
an errors file; the export streamed as CSV and JSONL; bad input as problem+json."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.config import Settings
from tests.api.conftest import add_users, api_settings, bearer

PROBLEM = "application/problem+json"
DEADLINE_S = 30.0


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return api_settings(database_url, bulk_dir=tmp_path / "bulk", api_max_body=1024)


@pytest.fixture
def app(
    db: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> FastAPI:
    return create_app(settings, db, session_factory, limiter=MemoryRateLimiter())


async def _finished(client: httpx.AsyncClient, job_id: int, headers: dict[str, str]) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        r = await client.get(f"/api/v1/imports/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("completed", "failed"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def test_csv_import_job_summary_and_errors_file(client, make_token, app) -> None:
    write = bearer(await make_token("users:write", "users:read"))
    # larger than RELOVE_API_MAX_BODY (1 KiB here): uploads have their own limit
    rows = "".join(f"{i};Имя{i};{'Москва' if i % 2 else 'Казань'}\n" for i in range(1, 120))
    data = ("id;first_name;markers.city\n" + rows + "bad;x;y\n").encode()
    assert len(data) > 1024
    r = await client.post(
        "/api/v1/imports", content=data, params={"file_name": "crm.csv", "mode": "merge"},
        headers={**write, "Content-Type": "text/csv", "Idempotency-Key": "upload-1"},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["file_name"] == "crm.csv" and queued["bytes_total"] == len(data)
    job = await _finished(client, queued["id"], write)
    assert job["status"] == "completed", job
    assert (job["summary"]["created"], job["summary"]["rejected"]) == (119, 1)
    assert job["has_errors_file"] is True and job["actor"]

    r = await client.get(f"/api/v1/imports/{job['id']}/errors", headers=write)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert len(lines) == 2 and lines[1].startswith("121,id 'bad'")

    r = await client.get("/api/v1/users/3", headers=write)
    assert r.json()["first_name"] == "Имя3" and r.json()["markers"] == {"city": "Москва"}
    r = await client.get("/api/v1/imports", headers=write)
    assert [j["id"] for j in r.json()["jobs"]] == [job["id"]]
    # the same key and upload: the first answer again, no second job
    r = await client.post(
        "/api/v1/imports", content=data, params={"file_name": "crm.csv", "mode": "merge"},
        headers={**write, "Content-Type": "text/csv", "Idempotency-Key": "upload-1"},
    )  # fmt: skip
    assert r.status_code == 202 and r.json()["id"] == queued["id"]
    r = await client.get("/api/v1/imports", headers=write)
    assert len(r.json()["jobs"]) == 1


async def test_jsonl_dry_run_changes_nothing(client, make_token, session_factory) -> None:
    await add_users(session_factory, {"id": 5, "markers": {"a": 0}})
    write = bearer(await make_token("users:write", "users:read"))
    data = b'{"id": 5, "markers": {"a": 1}}\n{"id": 6}\n'
    r = await client.post("/api/v1/imports", content=data, params={"dry_run": "true"},
                          headers={**write, "Content-Type": "application/x-ndjson"})  # fmt: skip
    assert r.status_code == 202, r.text
    job = await _finished(client, r.json()["id"], write)
    assert job["status"] == "completed" and job["format"] == "jsonl"
    assert job["summary"]["dry_run"] is True
    assert job["has_errors_file"] is False
    r = await client.get("/api/v1/users/5", headers=write)
    assert r.json()["markers"] == {"a": 0}
    assert (await client.get("/api/v1/users/6", headers=write)).status_code == 404
    r = await client.get(f"/api/v1/imports/{job['id']}/errors", headers=write)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


async def test_bad_uploads_are_problems_and_queue_nothing(client, make_token, settings) -> None:
    write = bearer(await make_token("users:write", "users:read"))
    csv_type = {**write, "Content-Type": "text/csv"}
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b"first_name\nx\n", {}, 422, "no id column"),
        (b"", {}, 422, "empty"),
        (b"id\n1\n", {"mode": "replace"}, 422, "mode"),
        (b"id\n1\n", {"types": "score=complex"}, 422, "score"),
        (b"id\n1\n", {"delimiter": ";;"}, 422, "delimiter"),
        (b"id\n1\n", {"delimiter": "\x00"}, 422, "delimiter"),
        (b"id\n1\n", {"delimiter": '"'}, 422, "delimiter"),
        (b"id\n1\n", {"file_name": "a\x00.csv"}, 422, "control characters"),
        (b"id\n1\n", {"encoding": "utf-16"}, 422, "cannot be read as utf-16"),
        (b"\xff\xfe\x00", {}, 422, "cannot be read"),
    ]
    for data, params, status, words in cases:
        r = await client.post("/api/v1/imports", content=data, params=params, headers=csv_type)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert words in r.json()["detail"], r.json()
    r = await client.get("/api/v1/imports", headers=write)
    assert r.json()["jobs"] == []
    assert not settings.bulk_dir.exists() or not any(settings.bulk_dir.iterdir())
    read_only = bearer(await make_token("users:read"))
    r = await client.post("/api/v1/imports", content=b"id\n1\n", headers=read_only)
    assert r.status_code == 403
    r = await client.get("/api/v1/imports/7", headers=write)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


async def test_export_streams_csv_and_jsonl(client, make_token, session_factory) -> None:
    await add_users(
        session_factory,
        *({"id": i, "first_name": f"=cmd{i}", "markers": {"city": "Москва" if i % 2 else "Казань",
                                                          "tags": ["a", "b"]}}
          for i in range(1, 8)),
    )  # fmt: skip
    read = bearer(await make_token("users:read"))
    r = await client.get("/api/v1/users:export", headers=read, params={
        "filter": 'city = "Москва"', "columns": "id,first_name,markers.city,markers.tags[]"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["id", "first_name", "markers.city", "markers.tags[]"]
    assert [row[0] for row in rows[1:]] == ["1", "3", "5", "7"]
    assert rows[1][1] == "=cmd1" and rows[1][2] == "Москва"

    r = await client.get("/api/v1/users:export", headers=read,
                         params={"format": "jsonl", "filter": "id > 5"})  # fmt: skip
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [u["id"] for u in lines] == [6, 7] and lines[0]["markers"]["city"] == "Казань"

    r = await client.get("/api/v1/users:export", headers=read,
                         params={"format": "jsonl", "filter": "id > 100"})  # fmt: skip
    assert r.status_code == 200 and r.text == ""

    for params, code in (({"filter": "city = "}, "invalid_filter"),
                         ({"columns": "password"}, "invalid_input"),
                         ({"format": "xml"}, "validation_error")):  # fmt: skip
        r = await client.get("/api/v1/users:export", headers=read, params=params)
        assert r.status_code == 422, params
        assert r.headers["content-type"] == PROBLEM and r.json()["code"] == code
    r = await client.get("/api/v1/users:export", headers=bearer(await make_token("events:read")))
    assert r.status_code == 403



async def test_the_server_fails_jobs_whose_process_died(app, client, session_factory,
                                                         make_token) -> None:  # fmt: skip
    from relove.bulk.models import BulkJob
    from relove.db.types import utcnow

    async with session_factory.begin() as s:
        s.add(BulkJob(file_name="old.csv", format="csv", options={}, status="running",
                      kind="import", rows=10, bytes_read=5, has_errors_file=False,
                      heartbeat_at=utcnow() - timedelta(hours=1)))  # fmt: skip
    async with app.router.lifespan_context(app):
        pass
    r = await client.get("/api/v1/imports", headers=bearer(await make_token("users:read")))
    job = r.json()["jobs"][0]
    assert job["status"] == "failed" and "interrupted" in job["error"]
