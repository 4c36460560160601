"""The inbox's storage (relove.bot.inbox.store) on both databases: deduplicated recording,
one owner per lane, order within a lane, take-over after a lease, pruning."""

from __future__ import annotations

from datetime import timedelta

from aiogram.types import Update
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.inbox.models import InboxLane, InboxUpdate
from relove.bot.inbox.store import TOUCHED, Inbox, lane_of, payload_of
from relove.events import Event, Message
from relove.events.updates import events_of_update
from relove.users.touch import Touch, TouchWriter


def _msg(update_id: int, user: int, text: str = "hi", chat: int | None = None) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": text,
        "chat": {"id": chat or user, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "A"}}}  # fmt: skip


async def _record(inbox: Inbox, *updates: dict) -> list[bool]:
    return [await inbox.record(u["update_id"], lane_of(u), payload_of(u)) for u in updates]


async def _count(engine: AsyncEngine, model: type) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


def test_lane_of_takes_the_user_then_the_chat() -> None:
    assert lane_of(_msg(1, 42, chat=-100)) == 42
    assert lane_of({"update_id": 2, "channel_post": {"chat": {"id": -1005}}}) == -1005
    assert lane_of({"update_id": 3, "callback_query": {"id": "x", "from": {"id": 7}}}) == 7
    assert lane_of({"update_id": 4, "message_reaction_count": {"chat": {"id": -3}}}) == -3
    assert lane_of({"update_id": 5, "poll": {"id": "p"}}) == 0


async def test_a_redelivery_is_recorded_once(db: AsyncEngine) -> None:
    inbox = Inbox(db, "a")
    assert await _record(inbox, _msg(1, 10), _msg(1, 10), _msg(2, 10)) == [True, False, True]
    assert await _count(db, InboxUpdate) == 2


async def test_one_owner_per_lane_and_updates_in_order(db: AsyncEngine) -> None:
    a, b = Inbox(db, "a"), Inbox(db, "b")
    await _record(a, _msg(1, 10), _msg(2, 20), _msg(3, 10), _msg(4, 30))
    got = await a.claim(1)  # the lane with the oldest update
    assert [(r.update_id, r.lane) for r in got] == [(1, 10), (3, 10)]
    got = await b.claim(10)
    assert [(r.update_id, r.lane) for r in got] == [(2, 20), (4, 30)]
    assert await a.claim(10) == [] and await b.claim(10) == []
    # Lane 10 receives more while a works: a continues it, b never sees it.
    await _record(b, _msg(5, 10))
    assert await b.claim(10) == []
    more = await a.finish([(1, "handled"), (3, "handled")], [10])
    assert [r.update_id for r in more] == [5]
    assert await b.claim(10) == []
    assert await a.finish([(5, "handled")], [10]) == []  # nothing left: released
    await _record(b, _msg(6, 10))
    assert [r.update_id for r in await b.claim(10)] == [6]
    async with db.connect() as conn:
        rows = (await conn.execute(select(InboxUpdate.update_id, InboxUpdate.outcome)
                                   .where(InboxUpdate.processed_at.is_not(None))
                                   .order_by(InboxUpdate.update_id))).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [(1, "handled"), (3, "handled"), (5, "handled")]


async def test_a_dead_owners_lanes_are_taken_over_after_the_lease(db: AsyncEngine) -> None:
    dead = Inbox(db, "dead", lease=-1)  # its leases are over as soon as taken
    live, other = Inbox(db, "live"), Inbox(db, "other")
    await _record(live, _msg(1, 10), _msg(2, 10), _msg(3, 20))
    assert [r.update_id for r in await dead.claim(1)] == [1, 2]
    await dead.finish([(1, "handled")])
    await TouchWriter(db, stamp=TOUCHED).touch(Touch(10, None, "A", None, stamps=(2,)))
    # … and died while handling the second, after its touch
    got = await live.claim(10)
    assert [(r.update_id, r.lane, r.touched) for r in got] == [(2, 10, True), (3, 20, False)]
    assert await live.renew() == 2
    assert await other.claim(10) == []  # a live lease holds
    assert await live.release_all() == 2
    assert [r.update_id for r in await other.claim(10)] == [2, 3]


async def test_processed_updates_are_pruned_and_the_backlog_measured(db: AsyncEngine) -> None:
    inbox = Inbox(db, "a")
    assert await inbox.backlog() == (0, 0.0)
    await _record(inbox, _msg(1, 10), _msg(2, 20))
    count, age = await inbox.backlog()
    assert count == 2 and age >= 0
    await inbox.claim(10)
    await inbox.finish([(1, "handled")], [10])
    assert await inbox.prune(timedelta(hours=1)) == 0
    assert await inbox.prune(timedelta(0)) == 1
    assert (await inbox.backlog())[0] == 1
    assert await _count(db, InboxUpdate) == 1
    assert await _count(db, InboxLane) == 1  # lane 20 still held
    # A pruned update redelivered is new again: the window must outlast Telegram's retries.
    assert await _record(inbox, _msg(2, 20)) == [False]



async def test_a_touch_stamps_its_update_in_its_own_commit(db: AsyncEngine) -> None:
    """The touch of an inbox update and the record that it happened commit together: a
    take-over after a crash knows exactly which updates already have their events."""
    inbox = Inbox(db, "a")
    await _record(inbox, _msg(1, 10, "раз"), _msg(2, 20, "два"), _msg(3, 10, "три"))
    writer = TouchWriter(db, stamp=TOUCHED)
    touches = [Touch(u, None, "A", None, text, True, events_of_update(Update.model_validate(m)),
                     stamps=(uid,))
               for uid, u, text, m in ((1, 10, "раз", _msg(1, 10, "раз")),
                                       (3, 10, "три", _msg(3, 10, "три")))]  # fmt: skip
    assert all(not isinstance(r, BaseException) for r in await writer.touch_many(touches))
    async with db.connect() as conn:
        stamped = (await conn.execute(select(InboxUpdate.update_id).where(
            InboxUpdate.touched_at.is_not(None)).order_by(InboxUpdate.update_id))).scalars()
        assert list(stamped) == [1, 3]  # one user's two touches merged: both stamped
        texts = (await conn.execute(select(Message.text).order_by(Message.id))).scalars()
        assert list(texts) == ["раз", "три"]
        received = await conn.scalar(select(func.count()).select_from(Event)
                                     .where(Event.name == "message.received"))  # fmt: skip
        assert received == 2
    got = await inbox.claim(10)
    assert [(r.update_id, r.touched) for r in got] == [(1, True), (2, False), (3, True)]
