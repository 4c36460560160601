"""Import jobs (what the API and the console run): upload → queued → running → completed."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import update

from relove.bulk.jobs import (
    ImportJobOptions,
    create_import_job,
    errors_file,
    fail_interrupted_jobs,
    get_import_job,
    job_dict,
    list_import_jobs,
    run_import_job,
)
from relove.bulk.models import BulkJob
from relove.db.types import utcnow
from relove.errors import InvalidInput, NotFound
from tests.bulk.conftest import read_users


async def test_an_upload_runs_as_a_job(db, session_factory, tmp_path):
    data = "id;first_name;markers.city\n1;Анна;Москва\n2;Bob;\nbad;x;y\n".encode("cp1251")
    async with session_factory.begin() as s:
        job = await create_import_job(
            s, tmp_path, io.BytesIO(data), "../../etc/people.csv",
            ImportJobOptions(encoding="cp1251"), actor="api:crm",
        )  # fmt: skip
    assert (job.status, job.file_name, job.format, job.bytes_total) == (
        "queued", "people.csv", "csv", len(data),
    )  # fmt: skip
    assert (tmp_path / str(job.id) / "input").read_bytes() == data

    summary = await run_import_job(db, tmp_path, job.id)
    assert (summary.created, summary.rejected) == (2, 1)
    async with session_factory() as s:
        done = await get_import_job(s, job.id)
        shown = job_dict(done)
    assert shown["status"] == "completed" and shown["progress"] == 1.0
    assert shown["summary"]["created"] == 2 and shown["finished_at"]
    path = errors_file(tmp_path, done)
    assert path is not None
    assert path.read_text(encoding="cp1251").splitlines()[1].startswith("4,id 'bad'")
    assert (await read_users(db))[1]["markers"] == {"city": "Москва"}

    with pytest.raises(InvalidInput, match="not queued"):
        await run_import_job(db, tmp_path, job.id)


async def test_a_bad_upload_is_refused_at_once_and_stores_nothing(db, session_factory, tmp_path):
    with pytest.raises(InvalidInput, match="no id column"):
        async with session_factory.begin() as s:
            await create_import_job(s, tmp_path, io.BytesIO(b"first_name\nx\n"), "a.csv")
    with pytest.raises(InvalidInput, match="unknown mode"):
        async with session_factory.begin() as s:
            await create_import_job(
                s, tmp_path, io.BytesIO(b"id\n1\n"), "a.csv", ImportJobOptions(mode="replace")
            )
    async with session_factory() as s:
        assert await list_import_jobs(s) == []
        with pytest.raises(NotFound):
            await get_import_job(s, 1)
    assert list(tmp_path.iterdir()) == []


async def test_dry_run_jobs_and_listing(db, session_factory, tmp_path):
    async with session_factory.begin() as s:
        for name in ("one.jsonl", "two.jsonl"):
            await create_import_job(
                s, tmp_path, io.BytesIO(b'{"id": 5, "markers": {"a": 1}}\n'), name,
                ImportJobOptions(dry_run=True),
            )  # fmt: skip
    async with session_factory() as s:
        jobs = await list_import_jobs(s)
        assert [j.file_name for j in jobs] == ["two.jsonl", "one.jsonl"]
        assert [j.file_name for j in await list_import_jobs(s, before_id=jobs[0].id)] == [
            "one.jsonl"
        ]
    summary = await run_import_job(db, tmp_path, jobs[1].id)
    assert summary.dry_run and summary.created == 1 and summary.changes[0].id == 5
    assert await read_users(db) == {}


async def test_interrupted_jobs_are_marked_failed(db, session_factory, tmp_path):
    async with session_factory.begin() as s:
        job = await create_import_job(s, tmp_path, io.BytesIO(b"id\n1\n"), "a.csv")
        await s.execute(
            update(BulkJob).where(BulkJob.id == job.id)
            .values(status="running", heartbeat_at=utcnow() - timedelta(minutes=10))
        )  # fmt: skip
    async with session_factory.begin() as s:
        assert await fail_interrupted_jobs(s) == 1
        assert await fail_interrupted_jobs(s) == 0
    async with session_factory() as s:
        failed = await get_import_job(s, job.id)
    assert failed.status == "failed" and "interrupted" in (failed.error or "")
