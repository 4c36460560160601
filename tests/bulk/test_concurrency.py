"""An import running while the bot touches the same users and writes their markers: nothing is
lost on either side — on every backend."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy.exc import DBAPIError

from relove.db.engine import create_session_factory
from relove.errors import NotFound
from relove.users import service
from relove.users.touch import Touch, TouchWriter
from tests.bulk.conftest import do_import, read_users

USERS = 600


async def test_import_alongside_touches_and_marker_writes_loses_nothing(db):
    ids = list(range(1, USERS + 1))
    data = "id,first_name,markers.imported,markers.tags[],context.source\n" + "".join(
        f"{i},Name{i},{i},a|b,import\n" for i in ids
    )
    writer = TouchWriter(db, max_batch=50)
    sessions = create_session_factory(db)
    rng = random.Random(7)

    async def touch(i: int) -> None:
        # The import writes each batch in id order; a touch batch in another order can meet it
        # in a deadlock, which PostgreSQL breaks by aborting one side: the import retries its
        # batch by itself, a touch is retried here the way the bot would see it fail.
        for _ in range(5):
            try:
                await writer.touch(Touch(i, f"u{i}", f"Touch{i}", None, f"m{i}"))
                return
            except DBAPIError as e:
                if getattr(e.orig, "sqlstate", None) != "40P01":
                    raise
        raise AssertionError(f"touch of {i} kept deadlocking")

    async def touches() -> None:
        order = ids[:]
        rng.shuffle(order)
        for start in range(0, len(order), 40):
            await asyncio.gather(*(touch(i) for i in order[start:start + 40]))

    marked: set[int] = set()

    async def marker_writes() -> None:
        order = ids[:]
        rng.shuffle(order)
        for i in order:
            try:
                async with sessions.begin() as s:
                    await service.set_values(s, i, {"bot": i})
                marked.add(i)
            except NotFound:
                await asyncio.sleep(0)  # neither the import nor a touch created it yet

    # Half of them write to the bot before the import starts; everyone writes during it.
    await asyncio.gather(*(writer.touch(Touch(i, None, None, None, "early")) for i in ids[::2]))
    summary, *_ = await asyncio.gather(
        do_import(db, data, batch_size=50), touches(), marker_writes()
    )
    await writer.close()
    assert summary.rejected == 0 and summary.created + summary.updated == USERS
    assert summary.updated >= USERS // 2
    users = await read_users(db)
    assert sorted(users) == ids
    for i in ids:
        u = users[i]
        assert u["markers"]["imported"] == i and u["markers"]["tags"] == ["a", "b"], u
        assert u["context"] == {"source": "import", "last_message": f"m{i}"}, u
        if i in marked:
            assert u["markers"]["bot"] == i, u
    assert len(marked) >= USERS // 2
