"""kill -9 of a worker in the middle of a batch: every event still reaches the receiver, and
a repeated message carries the same ``webhook-id`` and bytes (both databases)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from relove.events import NewEvent, record_many
from relove.webhooks import service
from tests.webhooks.conftest import Clock, unit, wait_for

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 40


async def test_kill_9_mid_batch_then_restart_delivers_each_event(
    session_factory, sink, start_worker, database_url
):
    async with unit(session_factory) as session:
        created = await service.add_endpoint(session, sink.url("/crm"), "*", allow_private=True)
    sink.delay = 0.1  # a batch stays in flight when the worker dies
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.webhooks.worker_proc", database_url, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        async with unit(session_factory) as session:
            await record_many(session, [NewEvent(i + 1, "order.paid", {"n": i})
                                        for i in range(EVENTS)], source="api")
        await wait_for(lambda: len(sink.received) >= 3, deadline=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert len({r.headers["webhook-id"] for r in sink.received}) < EVENTS  # killed mid-way
    clock = Clock()
    clock.advance(hours=1)  # the dead worker's leases have expired
    await start_worker(clock=clock)
    await wait_for(lambda: len({r.headers["webhook-id"] for r in sink.received}) >= EVENTS,
                   deadline=60)
    by_id: dict[str, set[str]] = {}
    for r in sink.received:
        by_id.setdefault(r.headers["webhook-id"], set()).add(r.body)
    assert len(by_id) == EVENTS
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a repeat is the same message
    assert sorted(json.loads(next(iter(b)))["data"]["props"]["n"] for b in by_id.values()) == \
        list(range(EVENTS))
    assert created.endpoint.id
