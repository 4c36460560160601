"""Sending against the sandbox Bot API with Telegram's real limits (both databases)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from relove.broadcasts.models import Broadcast, Delivery, DeliveryStatus
from relove.db.models import User
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
    # Paced at 30/s, the sandbox's bucket (Telegram's limits) never refused one. (A per-second
    # peak is not asserted: on a loaded machine requests paced evenly can arrive bunched.)
    assert stats["retry_after"] == 0
    assert stats["messages"] == 90
    rows = await _deliveries(db, broadcast_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.sent}
    for uid in ids[:3]:
        msgs = await sandbox_client.messages(uid, from_bot=True)
        assert [m["text"] for m in msgs] == [f"Привет, User{uid}!"]
    async with db.connect() as conn:
        status = (await conn.execute(select(Broadcast.status))).scalar_one()
    assert status == "finished"


async def _run(runner, broadcast_id):  # type: ignore[no-untyped-def]
    assert broadcast_id in await runner.claim_due()
    return await runner._tasks[broadcast_id]


async def _broadcast_row(engine, broadcast_id):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        query = select(Broadcast.__table__).where(Broadcast.id == broadcast_id)
        return (await conn.execute(query)).one()


async def test_429_is_honoured_and_the_message_retried(db, sandbox, sandbox_client, bot) -> None:
    # The sandbox allows 10/s, we push 30/s: Telegram answers 429, we wait and retry.
    await sandbox_client.set_limits(rate=10, burst=5)
    ids = await seed_users(db, sandbox_client, 40)
    broadcast_id = await new_broadcast(db, rate=30.0)
    await sandbox_client.reset_stats()
    report = await _run(make_runner(db, bot, make_settings(sandbox)), broadcast_id)
    assert report.stopped == "finished" and report.retries_429 > 0
    stats = await sandbox_client.stats()
    assert stats["retry_after"] > 0
    assert stats["messages"] == 40  # every message once, none lost, none twice
    rows = await _deliveries(db, broadcast_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.sent}
    for uid in ids[::7]:
        assert len(await sandbox_client.messages(uid, from_bot=True)) == 1


async def test_blocked_users_are_deactivated_and_missing_chats_fail(
    db, sandbox, sandbox_client, bot
) -> None:
    ids = await seed_users(db, sandbox_client, 6)
    await sandbox_client.block(ids[0])
    await sandbox_client.deactivate(ids[1])
    never = await seed_users(db, sandbox_client, 1, start_id=20_000)  # never pressed Start
    await sandbox_client.call("POST", "reset", json={"keep_users": True})
    ghost = 30_000  # in our database, unknown to Telegram: chat not found
    async with db.begin() as conn:
        await conn.execute(User.__table__.insert().values(
            id=ghost, first_name="Ghost", markers={"city": "Москва"}, context={}))
    async with db.begin() as conn:
        await conn.execute(
            User.__table__.update().where(User.id == never[0]).values(is_active=True)
        )
    await sandbox_client.call("POST", f"users/{never[0]}/block")
    await sandbox_client.call("POST", f"users/{never[0]}/unblock")
    broadcast_id = await new_broadcast(db)
    report = await _run(make_runner(db, bot, make_settings(sandbox)), broadcast_id)
    assert report.stopped == "finished"
    rows = await _deliveries(db, broadcast_id)
    assert rows[ids[0]].status == DeliveryStatus.blocked
    assert rows[ids[1]].status == DeliveryStatus.blocked
    assert rows[ghost].status == DeliveryStatus.failed
    assert {rows[i].status for i in ids[2:]} == {DeliveryStatus.sent}
    async with db.connect() as conn:
        active = dict((await conn.execute(select(User.id, User.is_active))).all())
    assert active[ids[0]] is False and active[ids[1]] is False
    assert active[ids[2]] is True and active[ghost] is True
    # a second broadcast leaves the deactivated users out of its snapshot
    second = await new_broadcast(db)
    assert ids[0] not in await _deliveries(db, second)


async def test_error_threshold_pauses(db, sandbox, sandbox_client, bot) -> None:
    async with db.begin() as conn:
        await conn.execute(User.__table__.insert(), [
            {"id": 40_000 + i, "first_name": "G", "markers": {"city": "Москва"}, "context": {}}
            for i in range(8)])
    broadcast_id = await new_broadcast(db, options={"max_errors": 3})
    report = await _run(make_runner(db, bot, make_settings(sandbox)), broadcast_id)
    assert report.stopped == "errors"
    row = await _broadcast_row(db, broadcast_id)
    assert row.status == "paused" and "3 failed" in row.reason
    rows = await _deliveries(db, broadcast_id)
    assert sum(r.status == DeliveryStatus.pending for r in rows.values()) > 0


async def test_pause_then_resume_sends_the_rest_once(db, sandbox, sandbox_client, bot) -> None:
    from relove.broadcasts import service
    from relove.db.engine import create_session_factory

    ids = await seed_users(db, sandbox_client, 60)
    broadcast_id = await new_broadcast(db, rate=20.0)
    runner = make_runner(db, bot, make_settings(sandbox))
    await runner.claim_due()
    task = runner._tasks[broadcast_id]
    # pause once some (not all: 60 at 20/s take three seconds at least) have gone out
    for _ in range(600):
        rows = await _deliveries(db, broadcast_id)
        if any(r.status == DeliveryStatus.sent for r in rows.values()):
            break
        await asyncio.sleep(0.05)
    sessions = create_session_factory(db)
    async with sessions.begin() as session:
        await service.pause(session, broadcast_id)
    report = await asyncio.wait_for(task, 60)
    assert report.stopped == "paused"
    rows = await _deliveries(db, broadcast_id)
    sent_before = sum(r.status == DeliveryStatus.sent for r in rows.values())
    assert 0 < sent_before < 60
    assert not any(r.status == DeliveryStatus.sending for r in rows.values())
    assert await runner.claim_due() == []  # paused: nobody takes it
    async with sessions.begin() as session:
        await service.resume(session, broadcast_id)
    report = await _run(runner, broadcast_id)
    assert report.stopped == "finished"
    rows = await _deliveries(db, broadcast_id)
    assert {r.status for r in rows.values()} == {DeliveryStatus.sent}
    for uid in ids:
        assert len(await sandbox_client.messages(uid, from_bot=True)) == 1


async def test_template_values_are_escaped(db, sandbox, sandbox_client, bot) -> None:
    await sandbox_client.create_user("<b>Eve</b> & co", id=50_000, started=True)
    async with db.begin() as conn:
        await conn.execute(User.__table__.insert().values(
            id=50_000, first_name="<b>Eve</b> & co", markers={"city": "<i>Рим</i>"}, context={}))
    broadcast_id = await new_broadcast(
        db, "<b>Привет</b>, {{ user.first_name }} из {{ markers.city | default('') }}",
        filter_text="id = 50000")
    await _run(make_runner(db, bot, make_settings(sandbox)), broadcast_id)
    [message] = await sandbox_client.messages(50_000, from_bot=True)
    assert message["text"] == "Привет, <b>Eve</b> & co из <i>Рим</i>"
    assert [e["type"] for e in message["entities"]] == ["bold"]  # only the operator's own tag


async def test_two_runners_never_send_the_same_broadcast(db, sandbox, sandbox_client, bot) -> None:
    await seed_users(db, sandbox_client, 30)
    broadcast_id = await new_broadcast(db, rate=30.0)
    settings = make_settings(sandbox)
    first, second = make_runner(db, bot, settings), make_runner(db, bot, settings)
    claimed = await asyncio.gather(first.claim_due(), second.claim_due())
    assert sorted(len(c) for c in claimed) == [0, 1]
    winner = first if claimed[0] else second
    await winner._tasks[broadcast_id]
    assert (await sandbox_client.stats())["messages"] == 30


async def test_due_scheduled_broadcast_is_started_by_a_worker(
    db, sandbox, sandbox_client, bot
) -> None:
    from datetime import timedelta

    from relove.db.types import utcnow

    await seed_users(db, sandbox_client, 3)
    later = await new_broadcast(db, start=False, scheduled_at=utcnow() + timedelta(hours=1))
    due = await new_broadcast(db, start=False, scheduled_at=utcnow() - timedelta(seconds=1))
    runner = make_runner(db, bot, make_settings(sandbox))
    assert await runner.claim_due() == [due]
    assert (await runner._tasks[due]).stopped == "finished"
    assert (await _broadcast_row(db, later)).status == "scheduled"
    assert len(await _deliveries(db, due)) == 3
