"""The webhook process's probes, on both databases: /readyz reports the shared inbox's lag and
fails above RELOVE_WEBHOOK_READY_MAX_LAG; /metrics reads the backlog (pending updates, the
oldest one's age) from the database at scrape time."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.inbox.processor import inbox_probes
from relove.bot.inbox.store import Inbox
from relove.ops.endpoints import Endpoints
from relove.ops.health import Readiness
from tests.bot.inbox.test_store import _msg, _record
from tests.ops.scrape import sample, scrape
from tests.sandbox_fixtures import eventually


async def _ready(endpoints: Endpoints) -> tuple[int, dict]:
    answer = await endpoints.answer("/readyz")
    return answer.status, json.loads(answer.body)


async def test_inbox_lag_in_readiness_and_metrics(db: AsyncEngine) -> None:
    inbox = Inbox(db, "a")
    checks, collectors = inbox_probes(inbox, max_lag=0.3)
    endpoints = Endpoints(Readiness.for_process(db, more=checks), collectors=collectors)
    status, body = await _ready(endpoints)
    assert status == 200 and body["checks"]["inbox"] == "ok"
    assert body["details"]["inbox"] == {"pending": 0, "oldest_age_seconds": 0.0,
                                        "max_lag_seconds": 0.3}  # fmt: skip

    await _record(inbox, _msg(1, 10), _msg(2, 20), _msg(3, 10))
    page = await scrape(endpoints)
    assert sample(page, "relove_inbox_pending") == 3
    assert sample(page, "relove_inbox_oldest_age_seconds") >= 0

    async def lagging() -> tuple[int, dict] | None:  # nobody processes: the age only grows
        status, body = await _ready(endpoints)
        return (status, body) if status == 503 else None

    status, body = await eventually(lagging, timeout=30)
    assert body["ready"] is False and body["checks"]["database"] == "ok"
    assert body["checks"]["inbox"].startswith("inbox lag ")
    assert "RELOVE_WEBHOOK_READY_MAX_LAG" in body["checks"]["inbox"]
    assert body["details"]["inbox"]["pending"] == 3
    assert body["details"]["inbox"]["oldest_age_seconds"] > 0.3
    assert sample(await scrape(endpoints), "relove_inbox_oldest_age_seconds") > 0.3

    claimed = await inbox.claim(10)
    await inbox.finish([(row.update_id, "handled") for row in claimed], [10, 20])
    status, body = await _ready(endpoints)
    assert status == 200 and body["details"]["inbox"]["pending"] == 0
    page = await scrape(endpoints)
    assert sample(page, "relove_inbox_pending") == 0
    assert sample(page, "relove_inbox_oldest_age_seconds") == 0


async def test_lag_never_fails_readiness_when_the_threshold_is_0(db: AsyncEngine) -> None:
    inbox = Inbox(db, "a")
    checks, _ = inbox_probes(inbox, max_lag=0)
    endpoints = Endpoints(Readiness.for_process(db, more=checks))
    await _record(inbox, _msg(1, 10))
    status, body = await _ready(endpoints)
    assert status == 200 and body["details"]["inbox"]["pending"] == 1
