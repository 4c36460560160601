"""Webhook cluster benchmark (issue 16): the sandbox posts updates to HAProxy on loopback, in
front of N `relove run --webhook` processes, with 2 `relove worker`s sending a broadcast, all on
a scratch PostgreSQL database and Redis (the shared Telegram limiter).

    .venv/bin/python bench/cluster.py                          # reduced: 2,000 updates, 200 users
    .venv/bin/python bench/cluster.py --updates 10000 --users 1000 --recipients 5000 --rate 300

For each N in --instances (default 1,2,3): simulated users send --updates messages at --rate/s
while a --recipients broadcast runs; with N >= 2 one instance is killed with SIGKILL at 40 % and
restarted 3 s later. ``--chat-rate``/``--chat-burst`` (default 0.9/s, 1) and ``--bot-rate``
(default 22/s) leave the bots a margin under Telegram's limits, so that no second seen by the
sandbox holds more than 1 message per chat or 30 for the bot. Reported: lost updates (a
message never recorded), duplicates (recorded twice), users whose order broke, broadcast
recipients sent twice, the sandbox's peak messages/s (bot) and per chat, 429s, the rate the
updates went in, and CPU seconds per update of the bot instances. Needs `haproxy` (Debian
package) on PATH; RELOVE_BENCH_DATABASE_URL (default the local `test` server) and
RELOVE_BENCH_REDIS_URL (default redis://127.0.0.1:6379/3).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_postgres  # noqa: E402
from bench.broadcast import Bench, free_port, spawn, stop  # noqa: E402
from relove.bot.inbox.models import InboxUpdate  # noqa: E402
from relove.broadcasts.models import Delivery  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.db.registry import import_all_models  # noqa: E402
from relove.events import Message  # noqa: E402
from relove.sandbox.client import SandboxClient  # noqa: E402

SECRET = "bench_cluster_secret"
HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend telegram
    bind 127.0.0.1:{port}
    default_backend bots
backend bots
    balance roundrobin
{servers}
"""


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cluster:
    def __init__(self, bench: Bench, workdir: Path, n: int, redis_url: str, token: str,
                 lease: float, chat_burst: float, bot_rate: float, chat_rate: float,
                 ) -> None:  # fmt: skip
        self.bench, self.workdir, self.n = bench, workdir, n
        self.ports = [free_port() for _ in range(n)]
        self.proxy_port = free_port()
        self.env = bench.env(
            RELOVE_BOT_TOKEN=token, RELOVE_REDIS_URL=redis_url,
            RELOVE_WEBHOOK_URL=f"http://127.0.0.1:{self.proxy_port}/tg",
            RELOVE_WEBHOOK_SECRET=SECRET, RELOVE_WEBHOOK_LEASE=str(lease),
            RELOVE_BROADCAST_IN_BOT="false", RELOVE_TELEGRAM_CHAT_BURST=str(chat_burst),
            RELOVE_TELEGRAM_RATE_LIMIT=str(bot_rate), RELOVE_TELEGRAM_CHAT_RATE=str(chat_rate),
        )  # fmt: skip
        self.bots: list[asyncio.subprocess.Process | None] = [None] * n
        self.cpu_dead = 0.0  # CPU time of killed instances
        self.workers: list[asyncio.subprocess.Process] = []
        self.haproxy: asyncio.subprocess.Process | None = None

    async def start(self, workers: int) -> None:
        servers = "\n".join(f"    server bot{i} 127.0.0.1:{p} check inter 500ms fall 1 rise 1"
                            for i, p in enumerate(self.ports))  # fmt: skip
        config = self.workdir / "haproxy.cfg"
        config.write_text(HAPROXY.format(port=self.proxy_port, servers=servers))
        self.haproxy = await asyncio.create_subprocess_exec(
            "haproxy", "-f", str(config), "-db",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for i in range(self.n):
            await self.start_bot(i)
        await asyncio.gather(*(self.ready(p) for p in self.ports))
        self.workers = [await spawn("worker", env=self.env) for _ in range(workers)]
        setter = await spawn("webhook", "set", env=self.env)
        if await setter.wait():
            raise RuntimeError("relove webhook set failed")

    async def start_bot(self, i: int) -> None:
        listen = f"127.0.0.1:{self.ports[i]}"
        log = (self.workdir / f"bot{i}.log").open("ab")  # kept with --logs
        self.bots[i] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relove", "run", "--webhook",
            env={**os.environ, **self.env, "RELOVE_WEBHOOK_LISTEN": listen},
            stdout=log, stderr=log)  # fmt: skip
        log.close()

    async def ready(self, port: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def kill_and_restart(self, i: int, after: float) -> None:
        proc = self.bots[i]
        assert proc is not None
        self.cpu_dead += cpu_seconds(proc.pid)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.sleep(after)
        await self.start_bot(i)
        await self.ready(self.ports[i])

    def bot_cpu(self) -> float:
        return self.cpu_dead + sum(cpu_seconds(p.pid) for p in self.bots if p is not None)

    async def stop(self) -> None:
        for proc in [*self.bots, *self.workers]:
            if proc is not None:
                await stop(proc)
        if self.haproxy is not None:
            await stop(self.haproxy)


async def run_once(bench: Bench, workdir: Path, n: int, args: argparse.Namespace,
                   redis_url: str) -> dict[str, float]:  # fmt: skip
    token = f"{secrets.randbelow(10**9) + 10**9}:BENCH{secrets.token_hex(8)}"  # own Redis keys
    await bench.prepare(args.recipients)
    users = [1_000_000 + i for i in range(args.users)]
    cluster = Cluster(bench, workdir, n, redis_url, token, args.lease, args.chat_burst,
                      args.bot_rate, args.chat_rate)
    sent: dict[int, list[str]] = defaultdict(list)
    try:
        await cluster.start(args.workers)
        await bench.client.reset_stats()
        broadcast_id = await bench.create(paid=False, rate=25.0)
        cpu0 = cluster.bot_cpu()
        t0 = time.monotonic()
        last: dict[int, asyncio.Task[None]] = {}
        killer: asyncio.Task[None] | None = None

        async def send(uid: int, text: str, before: asyncio.Task[None] | None) -> None:
            if before is not None:
                await before  # a user's messages go out in order
            await bench.client.send(uid, text)
            sent[uid].append(text)

        for k in range(args.updates):
            uid = users[k % len(users)]
            last[uid] = asyncio.create_task(send(uid, f"m{k // len(users)}", last.get(uid)))
            if n >= 2 and killer is None and k >= args.updates * 0.4:
                killer = asyncio.create_task(cluster.kill_and_restart(0, 3.0))
            delay = t0 + (k + 1) / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*last.values())
        sent_rate = args.updates / (time.monotonic() - t0)
        if killer is not None:
            await killer
        deadline = time.monotonic() + args.timeout
        while True:
            async with bench.engine.connect() as conn:
                done = await conn.scalar(select(func.count()).select_from(InboxUpdate)
                                         .where(InboxUpdate.processed_at.is_not(None)))  # fmt: skip
            if done >= args.updates or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        processed_s = time.monotonic() - t0
        cpu = cluster.bot_cpu() - cpu0
        await bench.wait_finished(broadcast_id, cluster.workers[0])
        stats = await bench.client.stats()
    finally:
        await cluster.stop()
    async with bench.engine.connect() as conn:
        rows = await conn.execute(
            select(Message.user_id, Message.text)
            .where(Message.direction == "in")
            .order_by(Message.id)
        )
        seen: dict[int, list[str]] = defaultdict(list)
        for uid, text in rows:
            seen[uid].append(text)
        deliveries = (await conn.execute(
            select(Delivery.user_id, func.count()).where(Delivery.broadcast_id == broadcast_id,
                                                         Delivery.status == "sent")
            .group_by(Delivery.user_id))).all()  # fmt: skip
    lost = sum(len(set(sent[u]) - set(seen[u])) for u in users)
    duplicates = sum(len(seen[u]) - len(set(seen[u])) for u in users)
    disorder = sum(1 for u in users if list(dict.fromkeys(seen[u])) != sent[u])
    return {
        "instances": n, "updates": args.updates, "sent_per_s": round(sent_rate, 1),
        "processed_in_s": round(processed_s, 1), "lost": lost, "duplicates": duplicates,
        "order_broken_users": disorder, "broadcast_sent": len(deliveries),
        "broadcast_twice": sum(1 for _, c in deliveries if c > 1),
        "peak_bot_per_s": stats["global_rate_peak"], "peak_chat_per_s": stats["chat_rate_peak"],
        "429s": stats["retry_after"], "429_by": stats.get("limited_by"),
        "cpu_ms_per_update": round(1000 * cpu / args.updates, 2),
    }


async def main(args: argparse.Namespace) -> None:
    if not shutil.which("haproxy"):
        sys.exit("haproxy not found: apt-get install haproxy")
    import_all_models()
    redis_url = os.environ.get("RELOVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(scratch_postgres("relove_bench_cluster"))
        from relove.db.engine import create_engine

        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        if args.logs:
            workdir = Path(args.logs)  # made before the loop starts
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        port = free_port()
        sandbox = await spawn("sandbox", "--port", str(port), "--rate", "30", "--burst", "30",
                              env={"RELOVE_LOG_LEVEL": "WARNING"})
        print(f"load average before: {loadavg()}", flush=True)
        stack.push_async_callback(stop, sandbox)
        client = await stack.enter_async_context(SandboxClient(f"http://127.0.0.1:{port}"))
        await client.wait_until_ready(30)
        bench = Bench(url, f"http://127.0.0.1:{port}", client)
        for n in [int(x) for x in args.instances.split(",")]:
            result = await run_once(bench, workdir, n, args, redis_url)
            print("  ".join(f"{k}={v}" for k, v in result.items()), flush=True)
            print(f"load average: {loadavg()}", flush=True)
        await bench.engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="updates sent per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for the last update after the last was sent")
    parser.add_argument("--chat-burst", type=float, default=1.0,
                        help="RELOVE_TELEGRAM_CHAT_BURST of the bots and workers: 1 holds every "
                             "chat to 1/s in any second (the product's default, 3, lets a chat "
                             "get 3 at once, as Telegram tolerates)")
    parser.add_argument("--chat-rate", type=float, default=0.9,
                        help="RELOVE_TELEGRAM_CHAT_RATE (a margin for the requests' jitter)")
    parser.add_argument("--bot-rate", type=float, default=22.0,
                        help="RELOVE_TELEGRAM_RATE_LIMIT: the bucket's burst and the replies' "
                             "reserve (~4 messages) and the requests' jitter come on top of it "
                             "in any one second")
    parser.add_argument("--logs", help="keep the instances' logs in this folder")
    parser.add_argument("--lease", type=float, default=5.0, help="RELOVE_WEBHOOK_LEASE")
    arguments = parser.parse_args()
    if arguments.logs:
        Path(arguments.logs).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments))
