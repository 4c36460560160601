"""A broadcast's history: delivery.* per recipient with its outcome, user.blocked on a real
change, broadcast.started/completed — each exactly once (both databases)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select, update

from relove.broadcasts.base import DeliveryResult
from relove.broadcasts.models import Broadcast, Delivery, DeliveryStatus
from relove.broadcasts.store import SqlDeliveryStore, claim_running
from relove.db.models import User
from relove.db.types import utcnow
from relove.events import Event
from tests.broadcasts.conftest import make_runner, make_settings, new_broadcast, seed_users


async def _events(engine) -> list[Event]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return list((await conn.execute(select(Event.__table__).order_by(Event.id))).all())


async def test_outcomes_blocks_start_and_completion(db, sandbox, sandbox_client, bot) -> None:
    ids = await seed_users(db, sandbox_client, 5)
    await sandbox_client.block(ids[0])
    ghost = 30_000  # unknown to Telegram: chat not found
    async with db.begin() as conn:
        await conn.execute(User.__table__.insert().values(
            id=ghost, first_name="Ghost", markers={"city": "Москва"}, context={}))
    broadcast_id = await new_broadcast(db)
    runner = make_runner(db, bot, make_settings(sandbox))
    assert await runner.claim_due() == [broadcast_id]
    report = await runner._tasks[broadcast_id]
    assert report is not None and report.stopped == "finished"

    events = await _events(db)
    per_user = Counter((e.user_id, e.name) for e in events if e.name.startswith("delivery."))
    assert per_user == Counter(
        {(ids[0], "delivery.blocked"): 1, (ghost, "delivery.failed"): 1}
        | {(i, "delivery.sent"): 1 for i in ids[1:]}
    )
    async with db.connect() as conn:
        deliveries = {r.user_id: r for r in await conn.execute(select(Delivery.__table__))}
    for e in events:
        if e.name == "delivery.sent":
            assert e.props == {"broadcast_id": broadcast_id, "delivery_id":
                               deliveries[e.user_id].id, "message_id":
                               deliveries[e.user_id].message_id}  # fmt: skip
            assert e.source == "broadcast"
    blocked = [(e.user_id, e.source) for e in events if e.name == "user.blocked"]
    assert blocked == [(ids[0], "broadcast")]
    started = [e.props for e in events if e.name == "broadcast.started"]
    completed = [e.props for e in events if e.name == "broadcast.completed"]
    assert started == [{"broadcast_id": broadcast_id, "recipients": 6}]
    assert completed == [{"broadcast_id": broadcast_id, "status": "finished",
                          "counts": {"sent": 4, "blocked": 1, "failed": 1}}]  # fmt: skip
    assert all(e.user_id is None for e in events if e.name.startswith("broadcast."))


async def _running_with_sending(db, n: int) -> tuple[int, list[tuple[int, int]]]:  # type: ignore[no-untyped-def]
    async with db.begin() as conn:
        await conn.execute(User.__table__.insert(), [
            {"id": i, "first_name": "U", "markers": {"city": "Москва"}, "context": {}}
            for i in range(1, n + 1)])  # fmt: skip
    broadcast_id = await new_broadcast(db)
    async with db.begin() as conn:
        await conn.execute(update(Broadcast.__table__).where(Broadcast.id == broadcast_id)
                           .values(lease_owner="w1", lease_until=utcnow() + timedelta(minutes=5)))
        rows = (await conn.execute(select(Delivery.id, Delivery.user_id)
                                   .order_by(Delivery.id))).all()  # fmt: skip
    store = SqlDeliveryStore(db)
    assert await store.mark_sending(broadcast_id, "w1", [r[0] for r in rows]) == {
        r[0] for r in rows}
    return broadcast_id, [(r[0], r[1]) for r in rows]


async def test_a_batch_written_twice_records_its_events_once(db) -> None:
    broadcast_id, rows = await _running_with_sending(db, 3)
    now = utcnow()
    results = [DeliveryResult(d, u, DeliveryStatus.sent, 1, message_id=100 + d, sent_at=now)
               for d, u in rows]  # fmt: skip
    store = SqlDeliveryStore(db)
    await store.record(broadcast_id, results)
    await store.record(broadcast_id, results)  # a retry after a lost acknowledgement
    sent = [e for e in await _events(db) if e.name == "delivery.sent"]
    assert sorted(e.user_id for e in sent) == sorted(u for _, u in rows)


async def test_in_flight_rows_of_a_dead_worker_become_unknown_with_events(db) -> None:
    broadcast_id, rows = await _running_with_sending(db, 4)
    async with db.begin() as conn:  # the first worker's lease lapses
        await conn.execute(update(Broadcast.__table__).where(Broadcast.id == broadcast_id)
                           .values(lease_until=utcnow() - timedelta(seconds=1)))
    assert await claim_running(db, broadcast_id, "w2", 30.0)
    unknown = [e for e in await _events(db) if e.name == "delivery.unknown"]
    assert sorted(e.user_id for e in unknown) == sorted(u for _, u in rows)
    assert {e.props["error"] for e in unknown} == {"in flight when the previous worker stopped"}
    # the first worker's late outcome still lands: unknown → sent is a real change
    await SqlDeliveryStore(db).record(broadcast_id, [
        DeliveryResult(rows[0][0], rows[0][1], DeliveryStatus.sent, 1, message_id=7,
                       sent_at=utcnow())])  # fmt: skip
    names = [e.name for e in await _events(db) if e.user_id == rows[0][1]]
    assert names == ["delivery.unknown", "delivery.sent"]
