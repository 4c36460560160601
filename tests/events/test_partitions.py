"""Monthly partitions (PostgreSQL) and retention (both databases): no insert ever fails for a
missing month, old months go whole, the conversation is pruned in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from relove.events import Event, Message, NewEvent, NewMessage, record, record_many
from relove.events.partitions import (
    DEFAULT_PARTITION,
    add_months,
    ensure_partitions,
    list_partitions,
    month_start,
    partition_name,
)
from relove.events.retention import prune
from tests.events.test_activity import _expected, _rollup


async def _partition_of(conn, event_id: int) -> str:
    return (
        await conn.execute(
            text("SELECT tableoid::regclass::text FROM events WHERE id = :id"), {"id": event_id}
        )
    ).scalar_one()


async def _ids(session_factory) -> list[int]:
    async with session_factory() as s:
        return list((await s.execute(select(Event.id).order_by(Event.at, Event.id))).scalars())


async def test_a_month_boundary_splits_cleanly(db, session_factory):
    last = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    async with session_factory.begin() as s:
        await record(s, 1, "a.b", {"n": 1}, source="system", at=last)
        await record(s, 1, "a.b", {"n": 2}, source="system", at=last + timedelta(microseconds=1))
    async with session_factory() as s:
        ats = (await s.execute(select(Event.at).order_by(Event.at))).scalars().all()
    assert ats == [last, last + timedelta(microseconds=1)]
    if db.dialect.name == "postgresql":
        async with db.begin() as conn:
            await conn.run_sync(lambda c: ensure_partitions(c, now=last))
        first, second = await _ids(session_factory)
        async with db.connect() as conn:
            assert await _partition_of(conn, first) == "events_p202612"
            assert await _partition_of(conn, second) == "events_p202701"


async def test_a_missing_future_partition_never_fails_an_insert(db, session_factory):
    far = datetime.now(UTC) + timedelta(days=3 * 365)
    async with session_factory.begin() as s:
        await record_many(s, [NewEvent(1, "order.planned", {"i": i}, at=far) for i in range(3)],
                          source="api")  # fmt: skip
    assert len(await _ids(session_factory)) == 3
    if db.dialect.name != "postgresql":
        return
    (first, *_) = await _ids(session_factory)
    async with db.connect() as conn:
        assert await _partition_of(conn, first) == DEFAULT_PARTITION
    async with db.begin() as conn:  # the maintenance gives the month its partition
        created = await conn.run_sync(lambda c: ensure_partitions(c))
    assert partition_name(month_start(far)) in created
    async with db.connect() as conn:
        assert await _partition_of(conn, first) == partition_name(month_start(far))
        stray = await conn.execute(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}"))
        assert stray.scalar_one() == 0
    async with session_factory.begin() as s:  # and inserts into that month keep working
        await record(s, 1, "order.planned", {"i": 4}, source="api", at=far)
    assert len(await _ids(session_factory)) == 4


async def test_prune_drops_old_months_and_old_messages(db, session_factory):
    now = datetime.now(UTC)
    old = now - timedelta(days=500)
    async with session_factory.begin() as s:
        await record_many(s, [
            NewEvent(1, "message.received", {}, at=old, message=NewMessage("text", "old")),
            NewEvent(1, "message.received", {}, at=now - timedelta(days=100),
                     message=NewMessage("text", "older than 90 days")),
            NewEvent(1, "message.received", {}, at=now, message=NewMessage("text", "new")),
        ], source="bot")  # fmt: skip
    if db.dialect.name == "postgresql":
        async with db.begin() as conn:
            await conn.run_sync(lambda c: ensure_partitions(c, now=old))  # old's month exists
    report = await prune(db, events_days=365, messages_days=90, batch=1)
    async with session_factory() as s:
        events = (await s.execute(select(Event.at).order_by(Event.at))).scalars().all()
        texts = (await s.execute(select(Message.text).order_by(Message.at))).scalars().all()
    assert events == [now - timedelta(days=100), now]
    assert texts == ["new"]
    # the activity rollup forgot the dropped month too (a dropped partition fires no trigger)
    assert await _rollup(db) == _expected([(1, "message.received", at) for at in events])
    assert report.messages_deleted == 2
    if db.dialect.name == "postgresql":
        assert partition_name(month_start(old)) in report.partitions_dropped
        async with db.connect() as conn:
            names = await conn.run_sync(lambda c: [p.name for p in list_partitions(c)])
        coming = partition_name(add_months(month_start(now), 3))
        assert coming in names and partition_name(month_start(old)) not in names
    else:
        assert report.events_deleted == 1


@pytest.mark.parametrize("months", [0, 1])
async def test_ensure_is_idempotent(db, months):
    if db.dialect.name != "postgresql":
        assert await prune(db, events_days=365, messages_days=90) is not None
        return
    now = add_months(month_start(datetime.now(UTC)), months)
    at = datetime(now.year, now.month, 1, tzinfo=UTC)
    async with db.begin() as conn:
        await conn.run_sync(lambda c: ensure_partitions(c, now=at))
    async with db.begin() as conn:
        assert await conn.run_sync(lambda c: ensure_partitions(c, now=at)) == []
    async with db.connect() as conn:
        n = await conn.scalar(select(func.count()).select_from(Event))
    assert n == 0


async def test_the_maintenance_runs_at_start_up_and_stops(db, session_factory):
    from relove.events.retention import HistoryMaintenance
    from tests.sandbox_fixtures import eventually

    async with session_factory.begin() as s:
        old = datetime.now(UTC) - timedelta(days=200)
        message = NewMessage("text", "old")
        await record_many(s, [NewEvent(1, "message.received", {}, at=old, message=message)],
                          source="bot")  # fmt: skip
    maintenance = HistoryMaintenance(db, events_days=365, messages_days=90, every=3600)
    await maintenance.start()

    async def gone() -> bool:
        async with session_factory() as s:
            return await s.scalar(select(func.count()).select_from(Message)) == 0

    try:
        assert await eventually(gone, timeout=30)
    finally:
        await maintenance.stop()
    await maintenance.stop()  # idempotent
