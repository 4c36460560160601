"""Keyset pages of /users stay exact while users are being added: every user that existed when
the listing began comes exactly once, in id order, whatever is inserted between the pages
(below the cursor, above it, or into the page being read)."""

from __future__ import annotations

import asyncio

from tests.api.conftest import add_users


async def test_every_user_exactly_once_while_users_are_inserted(
    client, session_factory, admin_headers
) -> None:
    before = list(range(2, 602, 2))  # 300 users with even ids
    await add_users(session_factory, *({"id": i, "markers": {"wave": 0}} for i in before))
    inserted: list[int] = []
    next_odd = iter(range(1, 10_000, 2))
    page_read, written = asyncio.Event(), asyncio.Event()
    done = False

    async def insert_while_listing() -> None:
        # After every page: users below the cursor, around it and past the end.
        while not done:
            await page_read.wait()
            page_read.clear()
            ids = [next(next_odd) for _ in range(7)] + [10_000 + len(inserted)]
            await add_users(session_factory, *({"id": i, "markers": {"wave": 1}} for i in ids))
            inserted.extend(ids)
            written.set()

    async def list_all() -> list[int]:
        nonlocal done
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, object] = {"limit": 25, "fields": "markers"}
            if cursor:
                params["cursor"] = cursor
            r = await client.get("/api/v1/users", params=params, headers=admin_headers)
            assert r.status_code == 200, r.text
            seen += [u["id"] for u in r.json()["users"]]
            cursor = r.json().get("next_cursor")
            if not cursor:
                done = True
                page_read.set()
                return seen
            page_read.set()  # the writer inserts before the next page is read
            await written.wait()
            written.clear()

    seen, _ = await asyncio.gather(list_all(), insert_while_listing())
    assert len(inserted) >= 8 * 12  # the writer ran between every two pages
    assert seen == sorted(set(seen))  # strictly increasing: nobody twice
    assert set(before) <= set(seen)  # nobody who was there is missed
    assert set(seen) <= set(before) | set(inserted)
