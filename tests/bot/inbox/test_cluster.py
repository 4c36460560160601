"""Issue 16, reduced: the sandbox delivers webhooks through a load balancer to two
`relove run --webhook` processes sharing the database; one is killed with SIGKILL mid-run.
Every update is processed, in order per user, redeliveries are deduplicated, the dead
instance's lanes are taken over after its lease. (bench/cluster.py: nginx, 3 instances,
workers, Redis, 10,000 updates.)"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bot.inbox.models import InboxLane, InboxUpdate
from relove.cli import main
from relove.events import Message
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from tests.conftest import PG_URL
from tests.http_balancer import HttpBalancer
from tests.sandbox_fixtures import eventually

SECRET = "cluster_secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(self, env: dict[str, str], workdir: Path, name: str) -> None:
        self.port = _free_port()
        self.env = {**env, "RELOVE_WEBHOOK_LISTEN": f"127.0.0.1:{self.port}"}
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relove", "run", "--webhook"],
                env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def ready(self) -> None:
        async def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"instance exited: {self.log.read_text()[-2000:]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(listening, timeout=90, interval=0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no goodbye, its leases stay behind
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@asynccontextmanager
async def _cluster(
    database_url: str, sandbox: Sandbox, workdir: Path, count: int
) -> AsyncIterator[tuple[list[Instance], HttpBalancer, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOVE_")}
    env.update({
        "RELOVE_DATABASE_URL": database_url, "RELOVE_BOT_TOKEN": DEFAULT_TOKEN,
        "RELOVE_TELEGRAM_API_URL": str(sandbox.url), "RELOVE_WEBHOOK_SECRET": SECRET,
        "RELOVE_WEBHOOK_LEASE": "2", "RELOVE_BROADCAST_IN_BOT": "false",
        "RELOVE_LOG_LEVEL": "WARNING",
    })  # fmt: skip
    instances = [Instance(env, workdir, f"bot{i}") for i in range(count)]
    async with HttpBalancer([i.url for i in instances]) as balancer:
        env["RELOVE_WEBHOOK_URL"] = f"{balancer.url}/tg"
        for instance in instances:
            instance.env["RELOVE_WEBHOOK_URL"] = env["RELOVE_WEBHOOK_URL"]
            instance.start()
        try:
            await asyncio.gather(*(i.ready() for i in instances))
            yield instances, balancer, env
        finally:
            await asyncio.gather(*(asyncio.to_thread(i.stop) for i in instances))


async def _incoming(engine: AsyncEngine) -> dict[int, list[str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Message.user_id, Message.text)
            .where(Message.direction == "in")
            .order_by(Message.id)
        )
        seen: dict[int, list[str]] = defaultdict(list)
        for user_id, text in rows:
            seen[user_id].append(text)
        return seen


async def test_two_instances_lose_nothing_and_keep_order_through_a_kill(
    db: AsyncEngine, database_url: str, sandbox: Sandbox, sandbox_client: SandboxClient,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if db.dialect.name == "sqlite" and PG_URL:
        pytest.skip("processes are slow to start here: the cluster runs once, on PostgreSQL")
    async with _cluster(database_url, sandbox, tmp_path, 2) as (instances, balancer, env):
        for key, value in env.items():
            if key.startswith("RELOVE_"):
                monkeypatch.setenv(key, value)
        assert await asyncio.to_thread(main, ["webhook", "set"]) == 0  # the CLI, as deployed
        assert sandbox.updates.webhook_info()["url"] == env["RELOVE_WEBHOOK_URL"]

        users = [(await sandbox_client.create_user(f"Гость{i}"))["id"] for i in range(10)]
        rounds = 6
        sent: dict[int, list[str]] = defaultdict(list)

        async def talk(user_id: int) -> None:
            for n in range(rounds):
                text = f"m{n} from {user_id}"
                await sandbox_client.send(user_id, text)
                sent[user_id].append(text)
                await asyncio.sleep(0.15)

        chatting = asyncio.gather(*(talk(u) for u in users))

        async def first_instance_busy() -> bool:
            return balancer.forwarded[instances[0].url] >= 5

        await eventually(first_instance_busy, timeout=60)
        instances[0].kill()
        await chatting
        total = len(users) * rounds

        async def all_processed() -> bool:
            async with db.connect() as conn:
                done = await conn.scalar(select(func.count()).select_from(InboxUpdate)
                                         .where(InboxUpdate.processed_at.is_not(None)))  # fmt: skip
            return done == total

        await eventually(all_processed, timeout=120, interval=0.3)
        incoming = await _incoming(db)
    # SIGTERM: the survivor finished its work, gave its lanes back and exited cleanly.
    assert instances[1].proc is not None and instances[1].proc.returncode == 0
    async with db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(InboxLane)) == 0
    assert sandbox.updates.webhook_info()["pending_update_count"] == 0
    for user_id in users:
        # Nothing lost, in order. An update whose touch was committed when its instance died
        # is touched again without its events (the touch stamps it in its own commit:
        # tests/bot/inbox/test_kill.py kills at exactly that point).
        collapsed = [t for i, t in enumerate(incoming[user_id])
                     if i == 0 or t != incoming[user_id][i - 1]]  # fmt: skip
        assert collapsed == sent[user_id]
    # Only a live instance stalled past the 2 s lease could lose a lane before its touch
    # committed (both instances then touch the update): at most one per user.
    assert all(len(incoming[u]) - len(sent[u]) <= 1 for u in users), incoming
    assert balancer.forwarded[instances[1].url] > 0
