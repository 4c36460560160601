"""The touch writer's connections: a lane holds one while it has batches to write, and gives it
back when it runs out of work — also after a batch that failed."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import CONTEXT_MAX_BYTES, User
from relove.users.touch import Touch, TouchWriter


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
