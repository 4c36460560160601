"""Broadcast progress on /metrics, on both databases: the deliveries still to send (a gauge
read from the database at scrape time) fall to 0 while the sent counter rises by the audience."""

from __future__ import annotations

from relove.broadcasts.store import count_pending_deliveries
from relove.ops.endpoints import Endpoints
from tests.broadcasts.conftest import make_runner, make_settings, new_broadcast, seed_users
from tests.ops.scrape import sample, scrape


async def test_pending_deliveries_fall_as_the_sent_counter_rises(db, sandbox, sandbox_client,
                                                                 bot) -> None:  # fmt: skip
    endpoints = Endpoints(collectors=[lambda: count_pending_deliveries(db)])
    await seed_users(db, sandbox_client, 12)
    broadcast_id = await new_broadcast(db)
    before = await scrape(endpoints)
    assert sample(before, "relove_broadcast_pending") == 12  # started: every recipient queued
    runner = make_runner(db, bot, make_settings(sandbox, broadcast_rate=30.0))
    assert await runner.claim_due() == [broadcast_id]
    report = await runner._tasks[broadcast_id]
    assert report is not None and report.stopped == "finished"
    after = await scrape(endpoints)
    assert sample(after, "relove_broadcast_pending") == 0
    sent = ("relove_broadcast_deliveries_total", {"status": "sent"})
    assert sample(after, sent[0], **sent[1]) - sample(before, sent[0], **sent[1]) == 12
