"""Issue 19: the bot rides through a database outage (polling mode), on both databases.

Simulated users chat with the real bot through the sandbox (HTTP long polling) while the
database goes away: on PostgreSQL a TCP proxy in front of the server drops every connection and
refuses new ones; on SQLite another process holds the write lock past the busy timeout. Each
message gets an ``echo`` that reads the user's documents first (storage in the handler).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Router
from aiogram.types import Message
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from relove.db.engine import create_engine
from relove.db.models import User, UserSnapshot
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import Sandbox
from relove.users.service import get_user_documents
from tests.sandbox_fixtures import LiveBot, eventually, running_live_bot
from tests.tcp_proxy import TcpProxy

APOLOGY = "Извините, у нас был короткий сбой"
#: The bot's SQLite busy timeout in these tests (the product waits 30 s for the lock).
SQLITE_BUSY_MS = 300


@dataclass
class Outage:
    """A database the bot reaches through something the test can take away."""

    engine: AsyncEngine  # the bot's engine
    cut: Callable[[float], Awaitable[None]]  # the database is unavailable for N seconds


@asynccontextmanager
async def _postgres_behind_proxy(db: AsyncEngine) -> AsyncIterator[Outage]:
    url = db.url
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = create_engine(url.set(host="127.0.0.1", port=proxy.port)
                               .render_as_string(hide_password=False))
        try:
            yield Outage(engine, proxy.outage)
        finally:
            await engine.dispose()


@asynccontextmanager
async def _sqlite_with_a_lock_holder(db: AsyncEngine) -> AsyncIterator[Outage]:
    url = db.url.render_as_string(hide_password=False)
    engine = create_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")

    path = make_url(url).database
    assert path
    holder = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)

    async def cut(seconds: float) -> None:
        # Another process takes the write lock and keeps it (waiting for it off the loop: the
        # bot may be in the middle of a write that needs the loop to finish).
        await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
        try:
            await asyncio.sleep(seconds)
        finally:
            holder.execute("ROLLBACK")

    try:
        yield Outage(engine, cut)
    finally:
        holder.close()
        await engine.dispose()


@pytest.fixture
async def outage(db: AsyncEngine) -> AsyncIterator[Outage]:
    make = _sqlite_with_a_lock_holder if db.dialect.name == "sqlite" else _postgres_behind_proxy
    async with make(db) as found:
        yield found


def _echo_router() -> Router:
    router = Router(name="echo")

    async def echo(message: Message, user: UserSnapshot, session: AsyncSession) -> None:
        await get_user_documents(session, user.id)  # the handler's own storage
        await message.answer(f"echo {message.text}")

    router.message.register(echo)
    return router


async def _chat(client: SandboxClient, users: list[int], rounds: int, pause: float,
                label: str = "m") -> dict[int, list[str]]:  # fmt: skip
    """Every user writes ``rounds`` messages, one each ``pause`` seconds, all at once."""
    sent: dict[int, list[str]] = defaultdict(list)

    async def talk(user_id: int) -> None:
        for n in range(rounds):
            text = f"{label}{n} from {user_id}"
            await client.send(user_id, text)
            sent[user_id].append(text)
            await asyncio.sleep(pause)

    await asyncio.gather(*(talk(u) for u in users))
    return sent


async def _bot_texts(client: SandboxClient, user_id: int) -> list[str]:
    return [m["text"] for m in await client.messages(user_id, from_bot=True)]


async def _last_messages(engine: AsyncEngine, users: list[int]) -> dict[int, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(User.id, User.context).where(User.id.in_(users)))
        return {uid: (context or {}).get("last_message") for uid, context in rows}


async def _people(live: LiveBot, n: int) -> list[int]:
    return [(await live.new_user(f"Гость{i}"))["id"] for i in range(n)]


def _relove_lines(caplog: pytest.LogCaptureFixture, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("relove") and re.search(pattern, r.getMessage())]  # fmt: skip


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records with a traceback from the update path (the in-bot broadcast runner logs its
    own failed claims; that is the broadcasts worker's business, see tests/broadcasts)."""
    return [r for r in caplog.records if r.exc_info and r.name.startswith(_UPDATE_PATH)]


_UPDATE_PATH = ("relove.bot", "relove.db", "relove.users", "relove.events", "aiogram")


async def test_every_message_is_answered_in_order_across_an_outage(
    outage: Outage, sandbox: Sandbox, sandbox_client: SandboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    async with running_live_bot(outage.engine, sandbox, sandbox_client,
                                routers=[_echo_router()]) as live:  # fmt: skip
        users = await _people(live, 8)
        chatting = asyncio.create_task(_chat(sandbox_client, users, rounds=6, pause=0.4))
        await asyncio.sleep(0.5)
        await outage.cut(2.5)
        sent = await chatting

        async def all_answered() -> bool:
            for u in users:
                if len(await _bot_texts(sandbox_client, u)) < len(sent[u]):
                    return False
            return True

        await eventually(all_answered, timeout=90, interval=0.2)
        await asyncio.sleep(0.5)  # a duplicate would arrive right behind
        for user_id in users:
            assert await _bot_texts(sandbox_client, user_id) == [
                f"echo {text}" for text in sent[user_id]
            ]
        last = await _last_messages(outage.engine, users)
        assert last == {u: sent[u][-1] for u in users}
        health, stats = live.dp["db_health"], live.poller.ingest.stats  # type: ignore[union-attr]
    assert health.outages == 1 and health.waited > 0
    assert stats.dropped == 0 and stats.failed == 0
    assert len(_relove_lines(caplog, "unavailable")) == 1
    (back,) = _relove_lines(caplog, "is back after")
    assert re.search(r"after \d+\.\d s; \d+ updates waited", back)
    assert not _tracebacks(caplog)


async def test_an_outage_longer_than_the_grace_drops_with_a_line_and_an_apology(
    outage: Outage, sandbox: Sandbox, sandbox_client: SandboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    async with running_live_bot(outage.engine, sandbox, sandbox_client, db_outage_grace=1.0,
                                routers=[_echo_router()]) as live:  # fmt: skip
        users = await _people(live, 4)
        cut = asyncio.create_task(outage.cut(4.0))
        await asyncio.sleep(0.2)
        sent = await _chat(sandbox_client, users, rounds=3, pause=0.5)
        await cut
        after = await _chat(sandbox_client, users, rounds=1, pause=0, label="after")

        dropped: dict[int, int] = defaultdict(int)

        async def settled() -> bool:
            dropped.clear()
            for line in _relove_lines(caplog, r"dropped"):
                found = re.search(r"of user (\d+) dropped", line)
                assert found, line
                dropped[int(found.group(1))] += 1
            for u in users:
                texts = await _bot_texts(sandbox_client, u)
                echoes = [t for t in texts if t.startswith("echo ")]
                if len(echoes) + dropped[u] < len(sent[u]) + 1:
                    return False
                if dropped[u] and not any(t.startswith(APOLOGY) for t in texts):
                    return False
            return True

        await eventually(settled, timeout=90, interval=0.2)
        stats = live.poller.ingest.stats  # type: ignore[union-attr]
        assert stats.dropped == sum(dropped.values()) > 0
        for u in users:
            texts = await _bot_texts(sandbox_client, u)
            echoes = [t.removeprefix("echo ") for t in texts if t.startswith("echo ")]
            # Every message was answered once or dropped; what was answered kept its order.
            assert len(echoes) + dropped[u] == len(sent[u]) + 1
            order = sent[u] + after[u]
            assert echoes == [t for t in order if t in echoes]
            assert echoes[-1] == after[u][0]
            assert sum(t.startswith(APOLOGY) for t in texts) == (1 if dropped[u] else 0)
        last = await _last_messages(outage.engine, users)
        assert last == {u: after[u][0] for u in users}
    assert not _tracebacks(caplog)
