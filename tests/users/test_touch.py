"""The touch writer's connections: a lane holds one while it has batches to write (and briefly
after, for the next page), and gives it back when it runs out of work or the writer closes —
also after a batch that failed."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import CONTEXT_MAX_BYTES, User
from relove.users.touch import Touch, TouchWriter
from tests.sandbox_fixtures import eventually


async def test_lanes_give_their_connections_back_when_idle(db: AsyncEngine) -> None:
    writer = TouchWriter(db, max_batch=20)
    results = await asyncio.gather(
        *(writer.touch(Touch(i, f"u{i}", f"User{i}", None, f"m{i}")) for i in range(1, 201))
    )
    await writer.close()
    assert [u.id for u in results] == list(range(1, 201))
    assert db.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_failed_batch_drops_its_connection_and_the_rest_is_written(
    db: AsyncEngine,
) -> None:
    writer = TouchWriter(db)
    too_long = "x" * (CONTEXT_MAX_BYTES + 1)  # refused by the context's size constraint
    results = await writer.touch_many(
        [Touch(1, "a", "A", None, "fine"), Touch(2, "b", "B", None, too_long),
         Touch(3, "c", "C", None, "fine too")]
    )  # fmt: skip
    assert isinstance(results[1], IntegrityError)  # the same error on both paths
    assert [r.id for r in (results[0], results[2])] == [1, 3]  # type: ignore[union-attr]
    await writer.close()
    assert db.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with db.connect() as conn:
        ids = (await conn.scalars(select(User.id).order_by(User.id))).all()
    assert ids == [1, 3]


async def test_a_lane_keeps_its_connection_between_pages_and_close_gives_it_back(
    db: AsyncEngine,
) -> None:
    """Pages that follow each other reuse the lane's connection (no pool checkout, nor its
    liveness ping, per page); close() hands it back at once, lingering or not."""
    checkouts = 0

    def counted(*_args: object) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(db.sync_engine.pool, "checkout", counted)
    try:
        writer = TouchWriter(db, lanes=1, linger=3600.0)
        for page in range(3):
            users = await writer.touch_many([Touch(page * 10 + i, None, f"U{i}", None, "hi")
                                             for i in range(1, 4)])  # fmt: skip
            assert [u.id for u in users] == [page * 10 + i for i in range(1, 4)]  # type: ignore[union-attr]
        assert checkouts == 1
        assert db.pool.checkedout() == 1  # type: ignore[attr-defined]
        await writer.close()
        assert db.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        event.remove(db.sync_engine.pool, "checkout", counted)


async def test_an_idle_lane_gives_its_connection_back_after_lingering(db: AsyncEngine) -> None:
    writer = TouchWriter(db, lanes=1, linger=0.01)
    await writer.touch(Touch(1, None, "U", None, "hi"))

    async def returned() -> bool:
        return db.pool.checkedout() == 0  # type: ignore[attr-defined, no-any-return]

    await eventually(returned)
    await writer.close()


async def test_the_snapshot_is_the_stored_row(db: AsyncEngine) -> None:
    """What the touch returns (on PostgreSQL its times partly from the statement's own
    parameters) is what a read of the row gives."""
    writer = TouchWriter(db)
    first = await writer.touch(Touch(7, "seven", "Seven", "Last", "hello", True))
    again = await writer.touch(Touch(7, "seven2", "Seven", None, None))
    await writer.close()
    async with db.connect() as conn:
        row = (await conn.execute(select(User.__table__).where(User.id == 7))).one()
    stored = row._mapping
    assert again.created_at == first.created_at == stored["created_at"]
    assert again.updated_at == stored["updated_at"] and again.last_seen_at == stored["last_seen_at"]
    assert again.updated_at > first.updated_at  # type: ignore[operator]
    assert (again.username, again.last_name, again.is_active) == ("seven2", None, True)
    assert dict(again.context) == stored["context"] == {"last_message": "hello"}
    assert dict(again.markers) == stored["markers"]
