"""The admin flow while other connections commit (SQLite's deferred transactions refuse a read
→ write upgrade at once if another connection committed in between); on PostgreSQL the same
flow, without the interleaving.

Whenever the bot's update session reads a broadcast or sample users, another connection commits
a write right then — the worst moment for a read-then-write handler."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event, select

from relove.broadcasts.models import Broadcast
from tests.broadcasts.conftest import seed_users
from tests.broadcasts.test_bot_flow import _reply
from tests.sandbox_fixtures import LIVE_ADMIN_ID, LiveBot


class Interleaver:
    """After a SELECT on broadcasts or a sample of users, another connection commits."""

    def __init__(self, live: LiveBot) -> None:
        self.path = live.engine.url.database if live.engine.dialect.name == "sqlite" else None
        self.commits = 0
        if self.path:
            with sqlite3.connect(self.path) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS test_ticks (n INTEGER)")

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sql = " ".join(statement.split()).upper()
        if not sql.startswith("SELECT") or not (
            "FROM BROADCASTS" in sql or ("FROM USERS" in sql and "LIMIT" in sql)):
            return
        try:  # timeout 0: when the bot's transaction holds the write lock, nothing interleaves
            db = sqlite3.connect(self.path, timeout=0)
            try:
                db.execute("INSERT INTO test_ticks VALUES (1)")
                db.commit()
                self.commits += 1
            finally:
                db.close()
        except sqlite3.OperationalError:
            pass


async def test_confirm_and_ask_survive_concurrent_commits(live_bot: LiveBot) -> None:
    client, engine = live_bot.client, live_bot.engine
    await client.create_user("Админ", id=LIVE_ADMIN_ID)
    await client.ask(LIVE_ADMIN_ID, "/start")
    await seed_users(engine, client, 3)
    interleave = Interleaver(live_bot)
    if interleave.path:
        event.listen(engine.sync_engine, "after_cursor_execute", interleave)
    try:
        source = await client.send(LIVE_ADMIN_ID, "Встреча, {{ user.first_name }}!")
        asked = await _reply(live_bot, LIVE_ADMIN_ID, "/broadcast city = 'Москва'",
                             source["message_id"])
        confirm = await client.wait_for_bot_message(
            LIVE_ADMIN_ID, after=asked["message_id"],
            where=lambda m: bool(m["reply_markup"]) and "Получателей" in (m["text"] or ""))
        go = confirm["reply_markup"]["inline_keyboard"][0][0]
        await client.press(LIVE_ADMIN_ID, confirm["message_id"], data=go["callback_data"],
                           wait=10)

        def started(view: dict) -> bool:
            m = next(m for m in view["messages"] if m["message_id"] == confirm["message_id"])
            return bool(m["edited"])

        await client.wait_for(LIVE_ADMIN_ID, started, timeout=15)
    finally:
        if interleave.path:
            event.remove(engine.sync_engine, "after_cursor_execute", interleave)
            with sqlite3.connect(interleave.path) as conn:
                conn.execute("DROP TABLE test_ticks")
    async with engine.connect() as conn:
        row = (await conn.execute(select(Broadcast.status, Broadcast.options))).one()
    assert row.status != "draft"
    assert row.options["progress_message_id"] == confirm["message_id"]
