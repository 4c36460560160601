"""Exactly once through a kill -9: a real `relove run --webhook` dies (SIGKILL) right after
the touch of an update committed — the worst moment: its events are written, the update is not
processed — and a second instance takes the update over after the lease. The update's
``message.received`` event and incoming message exist once, the reply is sent once.

The process reaches that point deterministically through the product's fault setting
``RELOVE_FAULT_KILL_AT=touch`` (it sends itself SIGKILL after the first touch batch commits,
before anything else runs). Both databases."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.inbox.models import InboxUpdate
from relove.events import Event, Message
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from tests.ops.scrape import sample
from tests.sandbox_fixtures import eventually

SECRET = "kill_test_secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "relove", "run", "--webhook"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def _tail(log: Path) -> str:
    return log.read_text()[-2000:]


async def _listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    async def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"instance exited: {_tail(log)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(up, timeout=90, interval=0.2)


async def _counts(db: AsyncEngine, user_id: int) -> tuple[int, list[str], list[tuple]]:
    async with db.connect() as conn:
        received = await conn.scalar(select(func.count()).select_from(Event).where(
            Event.name == "message.received", Event.user_id == user_id))
        texts = (await conn.execute(select(Message.text).where(
            Message.user_id == user_id, Message.direction == "in").order_by(Message.id))).scalars()
        inbox = (await conn.execute(select(
            InboxUpdate.update_id, InboxUpdate.touched_at.is_not(None),
            InboxUpdate.processed_at.is_not(None)).order_by(InboxUpdate.update_id))).all()
    return int(received or 0), list(texts), [tuple(row) for row in inbox]


async def test_kill_9_right_after_the_touch_records_the_update_once(
    db: AsyncEngine, database_url: str, sandbox: Sandbox, sandbox_client: SandboxClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    assert sandbox.url
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOVE_")}
    env.update({
        "RELOVE_DATABASE_URL": database_url, "RELOVE_BOT_TOKEN": DEFAULT_TOKEN,
        "RELOVE_TELEGRAM_API_URL": sandbox.url, "RELOVE_WEBHOOK_SECRET": SECRET,
        "RELOVE_WEBHOOK_URL": f"http://127.0.0.1:{port}/tg",
        "RELOVE_WEBHOOK_LISTEN": f"127.0.0.1:{port}", "RELOVE_WEBHOOK_LEASE": "1",
        "RELOVE_BROADCAST_IN_BOT": "false", "RELOVE_WEBHOOKS_ENABLED": "false",
        "RELOVE_LOG_LEVEL": "WARNING",
    })  # fmt: skip
    log = tmp_path / "bot.log"
    doomed = _start({**env, "RELOVE_FAULT_KILL_AT": "touch"}, log)
    try:
        await _listening(doomed, port, log)
        async with aiohttp.ClientSession() as http:  # Telegram's setWebhook, on the sandbox
            answer = await http.post(f"{sandbox.url}/bot{DEFAULT_TOKEN}/setWebhook",
                                     json={"url": env["RELOVE_WEBHOOK_URL"],
                                           "secret_token": SECRET})  # fmt: skip
            assert (await answer.json())["ok"]
        user = (await sandbox_client.create_user("Аня"))["id"]
        await sandbox_client.send(user, "раз")
        returncode = await asyncio.to_thread(doomed.wait, 60)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    assert returncode == -signal.SIGKILL, _tail(log)
    # Dead right after the touch's commit: the event is there, and so is the stamp.
    received, texts, inbox = await _counts(db, user)
    assert (received, texts) == (1, ["раз"])
    assert [(touched, processed) for _, touched, processed in inbox] == [(True, False)]
    assert await sandbox_client.messages(user, from_bot=True) == []  # no handler ran

    probes = _free_port()
    survivor = _start({**env, "RELOVE_METRICS_LISTEN": f"127.0.0.1:{probes}"}, log)
    try:  # same address: Telegram's webhook stays as it is
        await _listening(survivor, port, log)

        async def processed() -> bool:
            return all(done for *_, done in (await _counts(db, user))[2])

        await eventually(processed, timeout=60, interval=0.2)
        replies = await sandbox_client.messages(user, from_bot=True)
        await sandbox_client.send(user, "два")  # the user goes on, on the survivor

        async def second_processed() -> bool:
            inbox = (await _counts(db, user))[2]
            return len(inbox) == 2 and all(done for *_, done in inbox)

        await eventually(second_processed, timeout=60, interval=0.2)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{probes}") as http:
            page = await (await http.get("/metrics")).text()
            ready = await (await http.get("/readyz")).json()
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(survivor.wait, 60) == 0
    received, texts, inbox = await _counts(db, user)
    assert (received, texts) == (2, ["раз", "два"])  # exactly once, in order
    # The taken-over update was handled (replied to) once, like the next one.
    all_replies = await sandbox_client.messages(user, from_bot=True)
    assert len(replies) >= 1 and len(all_replies) == 2 * len(replies), all_replies
    # The survivor's /metrics and /readyz say what happened (its own counters since start).
    assert sample(page, "relove_inbox_replayed_total") == 1
    assert sample(page, "relove_inbox_posts_total", outcome="recorded") == 1  # "два"
    assert sample(page, "relove_updates_processed_total", outcome="handled") == 2
    assert sample(page, "relove_inbox_pending") == 0
    assert ready["ready"] is True and ready["details"]["inbox"]["pending"] == 0
