"""The webhook endpoint (relove.bot.inbox.server) in-process, on both databases: only a
recorded update is answered 200; wrong secret 401, too large 413, not an update 400; a
redelivery is processed once; while the database is unreachable 503, then Telegram's
redelivery goes through; a stopping server answers 503 and gives its lanes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.factory import create_bot, create_dispatcher
from relove.bot.inbox.models import InboxLane, InboxUpdate
from relove.bot.inbox.server import SECRET_HEADER, WebhookServer
from relove.config import Settings
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from tests.bot.test_outage import Outage, outage  # noqa: F401 - the fixture
from tests.sandbox_fixtures import eventually

SECRET = "s3cret_TOKEN-1"


@asynccontextmanager
async def _server(engine: AsyncEngine, sandbox: Sandbox, **settings: Any
                  ) -> AsyncIterator[WebhookServer]:  # fmt: skip
    config = Settings(**{"bot_token": DEFAULT_TOKEN, "telegram_api_url": sandbox.url,
                         "webhook_url": "https://bot.example.org/tg", "webhook_secret": SECRET,
                         "webhook_listen": "127.0.0.1:0", "broadcast_in_bot": False,
                         "_env_file": None, **settings})  # fmt: skip
    bot = create_bot(config)
    server = WebhookServer(bot, create_dispatcher(config, engine), config, poll_interval=0.1)
    task = asyncio.create_task(server.run(handle_signals=False))

    async def listening() -> bool:
        if task.done():
            task.result()
        return server.port is not None

    try:
        await eventually(listening, timeout=30)
        # The sandbox delivers its users' updates here, like Telegram after setWebhook.
        await bot.set_webhook(f"http://127.0.0.1:{server.port}/tg", secret_token=SECRET)
        yield server
    finally:
        server.stop()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await bot.session.close()


def _update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_700_000_000, "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "Аня"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Аня"}}}  # fmt: skip


async def _post(server: WebhookServer, body: bytes | dict[str, Any], *,
                secret: str | None = SECRET) -> int:  # fmt: skip
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{server.port}/tg", data=data, headers=headers
    ) as resp:
        return resp.status


async def _rows(engine: AsyncEngine) -> list[tuple[int, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(InboxUpdate.update_id, InboxUpdate.outcome)
                                  .order_by(InboxUpdate.update_id))  # fmt: skip
        return [(r[0], r[1]) for r in rows]


async def _bot_texts(client: SandboxClient, user_id: int) -> list[str]:
    return [m["text"] for m in await client.messages(user_id, from_bot=True)]


async def test_only_a_recorded_update_is_acknowledged_and_processed_once(
    db: AsyncEngine, sandbox: Sandbox, sandbox_client: SandboxClient
) -> None:
    user = (await sandbox_client.create_user("Аня"))["id"]
    async with _server(db, sandbox, webhook_max_body=2048) as server:
        assert await _post(server, _update(1, user, "hi"), secret=None) == 401
        assert await _post(server, _update(1, user, "hi"), secret=SECRET + "x") == 401
        assert await _post(server, _update(1, user, "x" * 4000)) == 413
        assert await _post(server, b"not json") == 400
        assert await _post(server, {"message": {}}) == 400
        assert await _rows(db) == []
        await sandbox_client.send(user, "hi")

        async def processed() -> list[tuple[int, str | None]]:
            rows = await _rows(db)
            return rows if rows and rows[0][1] else []

        ((update_id, outcome),) = await eventually(processed, timeout=30)
        assert outcome == "handled"
        await eventually(lambda: _bot_texts(sandbox_client, user), timeout=30)
        async with db.connect() as conn:
            payload = await conn.scalar(select(InboxUpdate.payload))
        assert await _post(server, json.loads(payload)) == 200  # a redelivery
        await asyncio.sleep(0.5)  # a second run would reply right behind
        counters = server.counters()
    assert counters["received"] == 1 and counters["duplicates"] == 1
    assert counters["unauthorized"] == 2 and counters["rejected"] == 3
    assert counters["inbox_processed"] == 1 and counters["inbox_failed"] == 0
    assert await _rows(db) == [(update_id, "handled")]
    assert len(await _bot_texts(sandbox_client, user)) == 1  # one reply, not two
    async with db.connect() as conn:  # the stopped server gave its lanes back
        assert await conn.scalar(select(func.count()).select_from(InboxLane)) == 0


async def test_the_database_unreachable_answers_503_and_the_redelivery_goes_through(
    outage: Outage, sandbox: Sandbox, sandbox_client: SandboxClient  # noqa: F811
) -> None:
    user = (await sandbox_client.create_user("Аня"))["id"]
    async with _server(outage.engine, sandbox) as server:
        cut = asyncio.create_task(outage.cut(3.0))
        await asyncio.sleep(0.3)
        await sandbox_client.send(user, "during")
        assert await _post(server, _update(10**9, user, "during")) == 503

        async def refused() -> bool:
            info = sandbox.updates.webhook_info()
            return "503" in info.get("last_error_message", "")

        await eventually(refused, timeout=30)  # nothing acknowledged that was not recorded
        assert sandbox.updates.webhook_info()["pending_update_count"] >= 1
        await cut

        async def processed() -> bool:
            rows = await _rows(outage.engine)
            return len(rows) == 1 and rows[0][1] == "handled"

        await eventually(processed, timeout=60)
        await eventually(lambda: _bot_texts(sandbox_client, user), timeout=30)
        assert server.counters()["unavailable"] >= 2
    assert len(await _bot_texts(sandbox_client, user)) == 1


async def test_a_stopping_server_answers_503(db: AsyncEngine, sandbox: Sandbox) -> None:
    async with _server(db, sandbox) as server:
        server.stopping = True  # what SIGTERM sets first
        assert await _post(server, _update(9, 1, "late")) == 503
    assert await _rows(db) == []
