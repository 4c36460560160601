"""kill -9 mid-broadcast, restart: no user gets the message twice, every pending user gets it.

The worker is the real ``relove worker`` in a subprocess, sending to the sandbox over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from sqlalchemy import func, select

from relove.broadcasts.models import Broadcast, Delivery, DeliveryStatus
from relove.sandbox.core import DEFAULT_TOKEN
from tests.broadcasts.conftest import new_broadcast, seed_users
from tests.sandbox_fixtures import eventually

N = 150


async def _counts(engine, broadcast_id):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Delivery.status, func.count()).where(Delivery.broadcast_id == broadcast_id)
            .group_by(Delivery.status))
        return {DeliveryStatus(s).value: n for s, n in rows}


async def _worker(database_url: str, sandbox_url: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, RELOVE_DATABASE_URL=database_url, RELOVE_BOT_TOKEN=DEFAULT_TOKEN,
               RELOVE_TELEGRAM_API_URL=sandbox_url, RELOVE_BROADCAST_RATE="50",
               RELOVE_TELEGRAM_RATE_LIMIT="50", RELOVE_BROADCAST_LEASE_SECONDS="2",
               RELOVE_BROADCAST_POLL_SECONDS="0.2", RELOVE_BROADCAST_CONCURRENCY="20",
               RELOVE_LOG_LEVEL="WARNING")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relove", "worker", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_kill_and_resume(db, database_url, sandbox, sandbox_client) -> None:
    await sandbox_client.set_limits(rate=50, burst=50)
    ids = await seed_users(db, sandbox_client, N)
    broadcast_id = await new_broadcast(db)
    assert sandbox.url

    first = await _worker(database_url, sandbox.url)

    async def some_sent() -> bool:
        return (await sandbox_client.stats())["messages"] >= N // 3

    try:
        await eventually(some_sent, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    at_kill = await _counts(db, broadcast_id)
    assert at_kill.get("pending", 0) > 0  # killed mid-broadcast
    assert at_kill.get("sending", 0) <= 20  # at most the sender's concurrency in flight

    second = await _worker(database_url, sandbox.url)
    try:
        async def finished() -> bool:
            async with db.connect() as conn:
                status = (await conn.execute(
                    select(Broadcast.status).where(Broadcast.id == broadcast_id))).scalar_one()
            return status == "finished"

        await eventually(finished, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()

    counts = await _counts(db, broadcast_id)
    assert counts.get("pending", 0) == 0 and counts.get("sending", 0) == 0
    assert counts.get("unknown", 0) <= 20
    assert counts["sent"] + counts.get("unknown", 0) == N
    async with db.connect() as conn:
        status_of = dict((await conn.execute(
            select(Delivery.user_id, Delivery.status).where(Delivery.broadcast_id == broadcast_id)
        )).all())
    for uid in ids:
        received = len(await sandbox_client.messages(uid, from_bot=True))
        assert received <= 1, f"user {uid} got the message {received} times"
        if status_of[uid] == DeliveryStatus.sent:
            assert received == 1
