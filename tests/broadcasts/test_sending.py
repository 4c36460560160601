"""Sending against the sandbox Bot API with Telegram's real limits (both databases)."""

from __future__ import annotations

from sqlalchemy import select

from relove.broadcasts.models import Broadcast, Delivery, DeliveryStatus
from tests.broadcasts.conftest import make_runner, make_settings, new_broadcast, seed_users


async def _deliveries(engine, broadcast_id):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Delivery.user_id, Delivery.status, Delivery.message_id)
            .where(Delivery.broadcast_id == broadcast_id)
        )
        return {r.user_id: r for r in rows}


async def test_sends_everyone_once_within_the_rate(db, sandbox, sandbox_client, bot) -> None:
    settings = make_settings(sandbox, broadcast_rate=30.0)
    ids = await seed_users(db, sandbox_client, 90)
    broadcast_id = await new_broadcast(db)
    await sandbox_client.reset_stats()
    runner = make_runner(db, bot, settings)
    assert await runner.claim_due() == [broadcast_id]
    report = await runner._tasks[broadcast_id]
    assert report is not None and report.stopped == "finished"
    stats = await sandbox_client.stats()
    assert stats["retry_after"] == 0
    assert stats["messages"] == 90
    assert stats["global_rate_peak"] <= 31  # 1-s window at exactly 30/s holds 31 stamps
    rows = await _deliveries(db, broadcast_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.sent}
    for uid in ids[:3]:
        msgs = await sandbox_client.messages(uid, from_bot=True)
        assert [m["text"] for m in msgs] == [f"Привет, User{uid}!"]
    async with db.connect() as conn:
        status = (await conn.execute(select(Broadcast.status))).scalar_one()
    assert status == "finished"
