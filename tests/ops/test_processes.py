"""`relove worker` and `relove run` (polling) as real processes: their /readyz at
RELOVE_METRICS_LISTEN, JSON logs with RELOVE_LOG_FORMAT=json, and a clean exit 0 on SIGTERM
after the work in flight (the bot answers a message first; its update counters show it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.broadcasts.models import Delivery
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from tests.broadcasts.conftest import new_broadcast, seed_users
from tests.sandbox_fixtures import eventually

DEADLINE = 90.0  # a loaded machine starts Python slowly; only a hang reaches this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def _relove(args: list[str], env: dict[str, str], cwd: Path
                  ) -> AsyncIterator[asyncio.subprocess.Process]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELOVE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relove", *args, env={**clean, **env}, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _wait_ready(port: int, proc: asyncio.subprocess.Process) -> dict[str, object]:
    deadline = time.monotonic() + DEADLINE
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            assert proc.returncode is None, "the process ended before it was ready"
            try:
                r = await http.get(f"http://127.0.0.1:{port}/readyz")
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready in time"
            await asyncio.sleep(0.2)


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _json_lines(stderr: str) -> list[dict[str, object]]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, "no log lines"
    parsed = [json.loads(ln) for ln in lines]  # every line is one JSON object
    for rec in parsed:
        assert {"ts", "level", "logger", "message"} <= rec.keys()
    return parsed


def _env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return {"RELOVE_DATABASE_URL": database_url, "RELOVE_METRICS_LISTEN": f"127.0.0.1:{port}",
            "RELOVE_LOG_FORMAT": "json", "RELOVE_LOG_LEVEL": "INFO", **extra}


async def test_polling_bot_answers_then_exits_0_on_sigterm(
    sandbox: Sandbox, sandbox_client: SandboxClient, tmp_path: Path,
) -> None:
    # its own SQLite file (the bot upgrades it at start): one run is enough for the process's
    # behaviour, the storage is tested on both databases elsewhere
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    port = _free_port()
    env = _env(database_url, port, RELOVE_BOT_TOKEN=DEFAULT_TOKEN,
               RELOVE_TELEGRAM_API_URL=str(sandbox.url), RELOVE_BROADCAST_IN_BOT="false")
    async with _relove(["run"], env, tmp_path) as proc:
        await _wait_ready(port, proc)
        user = await sandbox_client.create_user("Аня")
        reply = await sandbox_client.ask(user["id"], "/start", timeout=DEADLINE)
        assert reply["text"]
        async with httpx.AsyncClient(timeout=10) as http:
            page = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'relove_updates_processed_total{outcome="handled"} 1.0' in page
        assert 'relove_telegram_sends_total{outcome="sent",path="bot"}' in page
        code, stderr = await _stop(proc)
    assert code == 0, stderr
    records = _json_lines(stderr)
    assert any(r.get("logger") == "relove.bot.polling" for r in records)


async def test_worker_sigterm_mid_broadcast_records_what_was_in_flight(
    db: AsyncEngine, database_url: str, sandbox: Sandbox, sandbox_client: SandboxClient,
    tmp_path: Path,
) -> None:
    """Ready at RELOVE_METRICS_LISTEN; SIGTERM while sending: the messages in flight finish
    and are recorded (no delivery is left `sending`), the process exits 0, nobody got the
    message twice; its JSON log lines carry the broadcast's id."""
    ids = await seed_users(db, sandbox_client, 60, start_id=70_000)
    broadcast_id = await new_broadcast(db)
    port = _free_port()
    env = _env(database_url, port, RELOVE_BOT_TOKEN=DEFAULT_TOKEN,
               RELOVE_TELEGRAM_API_URL=str(sandbox.url), RELOVE_BROADCAST_RATE="10",
               RELOVE_BROADCAST_POLL_SECONDS="0.2", RELOVE_BROADCAST_CONCURRENCY="5")

    async def some_sent() -> bool:
        return (await sandbox_client.stats())["messages"] >= 5

    async with _relove(["worker"], env, tmp_path) as proc:
        ready = await _wait_ready(port, proc)
        assert ready["checks"] == {"database": "ok", "schema": "ok"}
        await eventually(some_sent, timeout=DEADLINE)
        code, stderr = await _stop(proc)
    assert code == 0, stderr
    async with db.connect() as conn:
        status_of = {uid: str(getattr(st, "value", st)) for uid, st in (await conn.execute(
            select(Delivery.user_id, Delivery.status)
            .where(Delivery.broadcast_id == broadcast_id))).all()}  # fmt: skip
    assert "sending" not in status_of.values(), status_of
    for uid in ids:
        received = len(await sandbox_client.messages(uid, from_bot=True))
        assert received <= 1, f"user {uid} got the message {received} times"
        if received:  # whatever reached a user is recorded as such
            assert status_of[uid] in ("sent", "unknown"), (uid, status_of[uid])
        if status_of[uid] == "sent":
            assert received == 1
    assert any(r.get("broadcast_id") == broadcast_id for r in _json_lines(stderr))
