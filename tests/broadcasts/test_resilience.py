"""The sender under failures: ambiguous network errors, a failing store, a 429 while messages
hold rate slots, a failing heartbeat (both databases, the sandbox Bot API over HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from relove.broadcasts.base import DeliveryResult, Outcome, SendResult
from relove.broadcasts.content import Recipient, RenderedMessage
from relove.broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus
from relove.broadcasts.sender import BroadcastSender, SenderOptions
from relove.broadcasts.service import get_broadcast, template_of
from relove.broadcasts.store import SqlDeliveryStore, claim_running
from relove.broadcasts.telegram import HttpSend
from relove.db.engine import create_session_factory
from relove.telegram.ratelimit import Limits, MemoryRateLimitStorage, RateLimiter
from tests.broadcasts.conftest import make_runner, make_settings, new_broadcast, seed_users


async def _counts(engine, broadcast_id):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Delivery.status, func.count()).where(Delivery.broadcast_id == broadcast_id)
            .group_by(Delivery.status))
        return {DeliveryStatus(s).value: n for s, n in rows}


async def _statuses(engine, broadcast_id):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return dict((await conn.execute(
            select(Delivery.user_id, Delivery.status).where(Delivery.broadcast_id == broadcast_id)
        )).all())


async def _broadcast(engine, broadcast_id):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(
            select(Broadcast.__table__).where(Broadcast.id == broadcast_id))).one()


class FlakyStore(SqlDeliveryStore):
    """The real store whose outcome writes / lease renewals fail for a while."""

    def __init__(self, engine: Any, *, record_fails_for: float = 0.0,
                 heartbeat_fails: int = 0) -> None:
        super().__init__(engine)
        self.record_fails_until: float | None = None
        self.record_fails_for = record_fails_for
        self.heartbeat_fails = heartbeat_fails
        self.failed_records = 0
        self.failed_heartbeats = 0

    async def record(self, broadcast_id: int, results: Sequence[DeliveryResult]) -> None:
        now = time.monotonic()
        if self.record_fails_until is None:
            self.record_fails_until = now + self.record_fails_for
        if now < self.record_fails_until:
            self.failed_records += 1
            raise OSError("database unreachable")
        await super().record(broadcast_id, results)

    async def heartbeat(self, broadcast_id: int, owner: str, ttl: float) -> BroadcastStatus | None:
        if self.failed_heartbeats < self.heartbeat_fails:
            self.failed_heartbeats += 1
            raise OSError("database unreachable")
        return await super().heartbeat(broadcast_id, owner, ttl)


async def _sender(engine, broadcast_id, store, send, *, rate=30.0, owner="w1",  # type: ignore[no-untyped-def]
                  limiter=None, **options: Any) -> BroadcastSender:
    options.setdefault("lease_ttl", 2.0)
    options.setdefault("heartbeat_every", 0.3)
    assert await claim_running(engine, broadcast_id, owner, options["lease_ttl"])
    async with create_session_factory(engine)() as session:
        template = template_of(await get_broadcast(session, broadcast_id))
    limiter = limiter or RateLimiter(MemoryRateLimitStorage(), Limits(rate=rate))
    return BroadcastSender(broadcast_id, owner, template, store, send,
                           limiter.lane(rate), SenderOptions(**options))


async def test_ambiguous_failures_are_never_resent(db, sandbox, sandbox_client, bot) -> None:
    # Half the connections drop AFTER Telegram delivered the message.
    ids = await seed_users(db, sandbox_client, 40)
    broadcast_id = await new_broadcast(db, rate=30.0)
    await sandbox_client.set_limits(fault_drop_after=0.5)
    report = await asyncio.wait_for(_run(db, bot, sandbox, broadcast_id), 30)
    assert report.stopped == "finished"
    statuses = await _statuses(db, broadcast_id)
    assert set(statuses.values()) == {DeliveryStatus.sent, DeliveryStatus.unknown}
    for uid in ids:
        received = len(await sandbox_client.messages(uid, from_bot=True))
        assert received == 1, f"user {uid} got the message {received} times"
    assert report.retries_transient == 0


async def _run(db, bot, sandbox, broadcast_id):  # type: ignore[no-untyped-def]
    runner = make_runner(db, bot, make_settings(sandbox))
    assert broadcast_id in await runner.claim_due()
    return await runner._tasks[broadcast_id]


async def test_failing_outcome_writes_are_retried(db, sandbox, sandbox_client, api) -> None:
    # record() fails for 3 s, then recovers: the sender must not wedge.
    ids = await seed_users(db, sandbox_client, 40)
    broadcast_id = await new_broadcast(db, rate=30.0)
    store = FlakyStore(db, record_fails_for=3.0)
    sender = await _sender(db, broadcast_id, store, HttpSend(api), concurrency=8,
                           lease_ttl=10.0, store_retry_every=0.2)
    report = await asyncio.wait_for(sender.run(), 20)
    assert store.failed_records > 0
    assert report.stopped == "finished"
    assert await _counts(db, broadcast_id) == {"sent": len(ids)}
    assert (await sandbox_client.stats())["messages"] == len(ids)
    row = await _broadcast(db, broadcast_id)
    assert row.status == "finished" and row.lease_owner is None


async def test_a_store_failing_for_good_stops_the_sender_and_the_lease_lapses(
    db, sandbox, sandbox_client, api
) -> None:
    ids = await seed_users(db, sandbox_client, 40)
    broadcast_id = await new_broadcast(db, rate=30.0)
    store = FlakyStore(db, record_fails_for=3600.0)
    sender = await _sender(db, broadcast_id, store, HttpSend(api), concurrency=8,
                           lease_ttl=1.0, store_patience=1.0, store_retry_every=0.2)
    report = await asyncio.wait_for(sender.run(), 15)
    assert report.stopped == "store error"
    sent = (await sandbox_client.stats())["messages"]
    assert 0 < sent <= 8  # the window: nothing more went out while outcomes could not be written
    # the lease is no longer renewed: another worker takes over and marks those rows unknown
    await asyncio.sleep(1.2)
    assert await claim_running(db, broadcast_id, "w2", 5.0)
    counts = await _counts(db, broadcast_id)
    assert counts.get("unknown", 0) == sent and "sending" not in counts
    assert counts["pending"] == len(ids) - sent


async def test_a_failing_heartbeat_keeps_the_lease(db, sandbox, sandbox_client, api) -> None:
    ids = await seed_users(db, sandbox_client, 60)
    broadcast_id = await new_broadcast(db, rate=30.0)
    store = FlakyStore(db, heartbeat_fails=2)
    sender = await _sender(db, broadcast_id, store, HttpSend(api), lease_ttl=1.5,
                           heartbeat_every=0.4)
    task = asyncio.create_task(sender.run())
    taken = []
    while not task.done():  # another worker keeps trying to take the broadcast over
        if await claim_running(db, broadcast_id, "w2", 1.5):
            taken.append(time.monotonic())
            break
        await asyncio.sleep(0.1)
    report = await asyncio.wait_for(task, 20)
    assert store.failed_heartbeats == 2
    assert not taken and report.stopped == "finished"
    assert await _counts(db, broadcast_id) == {"sent": len(ids)}


class Timed:
    """The real send, noting when each call started and when a 429 came back."""

    def __init__(self, send: HttpSend) -> None:
        self.send = send
        self.starts: list[float] = []
        self.throttled: list[tuple[float, float]] = []

    async def __call__(self, recipient: Recipient, message: RenderedMessage) -> SendResult:
        self.starts.append(time.monotonic())
        result = await self.send(recipient, message)
        if result.outcome is Outcome.retry_after:
            self.throttled.append((time.monotonic(), result.retry_after or 0.0))
        return result


async def test_no_message_goes_out_during_retry_after(db, sandbox, sandbox_client, api) -> None:
    # Telegram allows 5/s, we send at 40/s with a wide window: many messages hold a rate slot
    # when the 429 comes back.
    await sandbox_client.set_limits(rate=5, burst=5)
    await seed_users(db, sandbox_client, 40)
    broadcast_id = await new_broadcast(db, rate=40.0)
    send = Timed(HttpSend(api))
    sender = await _sender(db, broadcast_id, SqlDeliveryStore(db), send, rate=40.0,
                           concurrency=40, lease_ttl=10.0, max_retry_after=50)
    report = await asyncio.wait_for(sender.run(), 60)
    assert report.stopped == "finished" and send.throttled
    for at, retry_after in send.throttled:
        early = [s - at for s in send.starts if at < s < at + retry_after - 0.05]
        assert not early, f"sent {len(early)} messages during a {retry_after}s pause"
    assert (await sandbox_client.stats())["messages"] == 40
