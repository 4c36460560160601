"""Broadcast benchmark against the sandbox Bot API (its real limits), in separate processes.

    .venv/bin/python bench/broadcast.py                 # all scenarios, SQLite
    .venv/bin/python bench/broadcast.py --postgres      # on a scratch PostgreSQL database
    .venv/bin/python bench/broadcast.py --only a,b --paid-users 5000 --big-users 20000

(a) free limit 30/s, 600 recipients: achieved rate ≥ 0.97 × limit, zero 429s
(b) paid mode 1000/s, 20,000 recipients: ≥ 0.95 × limit, zero 429s — sent by `relove run`
    (the bot itself) while simulated users chat with it:
(d) their reply latency, 99th percentile ≤ 1 s
(c) peak RSS of the sending process (`relove worker`) for 100,000 recipients ≤ 100 MB

The sandbox runs as `relove sandbox`, the sender as `relove worker` / `relove run`; the figures
come from the database (first and last sent_at) and the sandbox's counters (429s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_postgres  # noqa: E402
from relove.broadcasts import service  # noqa: E402
from relove.broadcasts.content import MessageContent  # noqa: E402
from relove.broadcasts.models import Broadcast, Delivery  # noqa: E402
from relove.db.engine import create_engine, create_session_factory  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.db.models import Base, User  # noqa: E402
from relove.db.registry import import_all_models  # noqa: E402
from relove.sandbox.client import SandboxClient  # noqa: E402
from relove.sandbox.core import DEFAULT_TOKEN  # noqa: E402

TEXT = "Привет, <b>{{ user.first_name }}</b>! Встреча в субботу в {{ markers.city }}."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relove", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Bench:
    def __init__(self, database_url: str, sandbox_url: str, client: SandboxClient) -> None:
        self.url = database_url
        self.sandbox_url = sandbox_url
        self.client = client
        self.engine = create_engine(database_url)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "RELOVE_DATABASE_URL": self.url, "RELOVE_BOT_TOKEN": DEFAULT_TOKEN,
            "RELOVE_TELEGRAM_API_URL": self.sandbox_url, "RELOVE_LOG_LEVEL": "WARNING",
            "RELOVE_BROADCAST_POLL_SECONDS": "0.2", "RELOVE_TELEGRAM_RATE_LIMIT": "30",
            **extra,
        }

    async def prepare(self, n: int) -> None:
        await self.client.reset()
        async with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(table.delete())
        start = 1_000_000
        for lo in range(0, n, 5000):
            ids = range(start + lo, start + min(n, lo + 5000))
            await self.client.create_users(
                [{"id": i, "first_name": f"U{i}", "started": True} for i in ids])
            async with self.engine.begin() as conn:
                await conn.execute(insert(User.__table__), [
                    {"id": i, "first_name": f"U{i}", "markers": {"city": "Москва"},
                     "context": {}, "is_active": True, "gender": "unknown"} for i in ids])

    async def create(self, *, paid: bool, rate: float) -> int:
        async with create_session_factory(self.engine)() as session:
            b = await service.create_broadcast(
                session, name="bench", filter_text="city = 'Москва'",
                content=MessageContent(TEXT), paid=paid, rate=rate)
            await service.start_broadcast(session, b.id)
            await session.commit()
            return b.id

    async def wait_finished(self, broadcast_id: int, proc: asyncio.subprocess.Process) -> None:
        while True:
            async with self.engine.connect() as conn:
                status = (await conn.execute(
                    select(Broadcast.status).where(Broadcast.id == broadcast_id))).scalar_one()
            if status not in ("running", "scheduled"):
                return
            if proc.returncode is not None:
                raise RuntimeError(f"the sending process exited with {proc.returncode}")
            await asyncio.sleep(0.25)

    async def figures(self, broadcast_id: int) -> tuple[int, float]:
        async with self.engine.connect() as conn:
            n, first, last = (await conn.execute(
                select(func.count(), func.min(Delivery.sent_at), func.max(Delivery.sent_at))
                .where(Delivery.broadcast_id == broadcast_id, Delivery.status == "sent"))).one()
        if isinstance(first, str):  # SQLite through a plain aggregate
            from datetime import datetime
            first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
        span = (last - first).total_seconds() if n > 1 else float("nan")
        return n, (n - 1) / span if span else float("nan")

    async def run(self, command: str, n: int, *, paid: bool, rate: float,
                  probe: bool = False) -> dict[str, float]:
        await self.prepare(n)
        broadcast_id = await self.create(paid=paid, rate=rate)
        await self.client.reset_stats()
        t0 = time.monotonic()
        proc = await spawn(command, env=self.env(RELOVE_BROADCAST_RATE=str(min(rate, 1000))))
        latencies: list[float] = []
        prober = asyncio.create_task(self.probe(latencies)) if probe else None
        try:
            await self.wait_finished(broadcast_id, proc)
            rss = peak_rss_mb(proc.pid)
        finally:
            if prober:
                prober.cancel()
                await asyncio.gather(prober, return_exceptions=True)
            await stop(proc)
        sent, achieved = await self.figures(broadcast_id)
        stats = await self.client.stats()
        out = {"recipients": n, "sent": sent, "rate": achieved, "limit": rate,
               "ratio": achieved / rate, "429s": stats["retry_after"], "rss_mb": rss,
               "wall_s": time.monotonic() - t0}
        if probe:
            latencies.sort()
            out.update(replies=len(latencies),
                       p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
                       p99_ms=1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)]
                       if latencies else float("nan"))
        return out

    async def probe(self, latencies: list[float], users: int = 4) -> None:
        """Simulated users chat with the bot; time from their message to its reply."""
        ids = [900_000 + i for i in range(users)]
        await self.client.create_users([{"id": i, "first_name": "Probe"} for i in ids])

        async def one(uid: int) -> None:
            await self.client.ask(uid, "/start", timeout=30)
            k = 0
            while True:
                k += 1
                t = time.monotonic()
                await self.client.ask(uid, f"ping {k}", timeout=30)
                latencies.append(time.monotonic() - t)
                await asyncio.sleep(1.2)  # stay under Telegram's 1 msg/s per chat

        await asyncio.gather(*(one(u) for u in ids))


def report(name: str, r: dict[str, float], target: str) -> None:
    figures = ", ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
    print(f"({name}) {figures}  [target: {target}]", flush=True)


async def main(args: argparse.Namespace) -> None:
    import_all_models()
    only = set(args.only.split(","))
    async with AsyncExitStack() as stack:
        if args.postgres:
            url = await stack.enter_async_context(scratch_postgres("relove_bench_bc"))
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        port = free_port()
        sandbox = await spawn("sandbox", "--port", str(port), "--rate", "30", "--burst", "30",
                              "--paid-rate", "1000", env={"RELOVE_LOG_LEVEL": "WARNING"})
        stack.push_async_callback(stop, sandbox)
        client = await stack.enter_async_context(SandboxClient(f"http://127.0.0.1:{port}"))
        await client.wait_until_ready(20)
        bench = Bench(url, f"http://127.0.0.1:{port}", client)
        print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}", flush=True)
        if "a" in only:
            r = await bench.run("worker", args.free_users, paid=False, rate=30.0)
            report("a", r, "ratio ≥ 0.97, 429s = 0")
        if "b" in only or "d" in only:
            r = await bench.run("run", args.paid_users, paid=True, rate=1000.0, probe=True)
            report("b+d", r, "ratio ≥ 0.95, 429s = 0, reply p99 ≤ 1000 ms")
        if "c" in only:
            r = await bench.run("worker", args.big_users, paid=True, rate=1000.0)
            report("c", r, "rss_mb ≤ 100")
        await bench.engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c", help="scenarios: a,b,c (d runs with b)")
    parser.add_argument("--free-users", type=int, default=600)
    parser.add_argument("--paid-users", type=int, default=20_000)
    parser.add_argument("--big-users", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="use a scratch PostgreSQL db")
    asyncio.run(main(parser.parse_args()))
