"""Automations benchmark (PostgreSQL by default) against the sandbox Bot API, in processes.

    .venv/bin/python bench/automations.py                      # 100,000 users, 60 s of sending
    .venv/bin/python bench/automations.py --users 20000 --window 30 --runner-users 5000

(a) N users enter one automation at once (N events committed in one transaction): the time
    until the worker (`relove worker`, a separate process) has started all N runs — target ≤ 5 s
    for 100,000;
(b) their first `send` step, through the shared limiter at the bot's limit (30/s): the rate
    the sandbox receives over a window after the first message — target ≥ 0.95 × 30/s, zero
    429s; (c) the worker's peak RSS — target ≤ 150 MB;
(r) the step runner alone, in this process: runs/s through `tag` + `set` + `emit` (no sends),
    each step with its own transaction, as the worker runs them;
(e) enqueue alone, in this process (`--enqueue-users N`): N trigger events committed at once,
    the time the intake (`take_in`) needs to start all N runs — (a) without the worker's
    start-up, polling and the sandbox; the tables are ANALYZEd first, as a live database's are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_postgres  # noqa: E402
from bench.broadcast import free_port, peak_rss_mb, spawn, stop  # noqa: E402
from relove.automations.definition import parse_automations  # noqa: E402
from relove.automations.models import AutomationCursor, AutomationRun  # noqa: E402
from relove.automations.runner import AutomationRunner, RunnerOptions  # noqa: E402
from relove.broadcasts.content import Recipient, RenderedMessage  # noqa: E402
from relove.db.engine import create_engine  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.db.models import Base, User  # noqa: E402
from relove.db.registry import import_all_models  # noqa: E402
from relove.sandbox.client import SandboxClient  # noqa: E402
from relove.sandbox.core import DEFAULT_TOKEN  # noqa: E402
from relove.telegram.outcomes import Outcome, SendResult  # noqa: E402
from relove.telegram.ratelimit import Limits, MemoryRateLimitStorage, RateLimiter  # noqa: E402

SENDING = """
automations:
  - id: bench
    trigger: {event: bench.entered}
    steps:
      - send: "Привет, <b>{{ user.first_name }}</b>! Это автоматизация."
      - wait: 1d
      - send: "День первый"
"""

LOCAL = """
automations:
  - id: local
    trigger: {event: bench.local}
    steps:
      - tag: bench
      - set: {bench_done: true}
      - emit: bench.done
"""

ENTER_SQL = """INSERT INTO events (user_id, name, props, source, actor, at)
SELECT id, :name, '{}'::jsonb, 'api', 'bench', now() FROM users WHERE id >= :lo"""


async def reset(engine, client: SandboxClient | None = None) -> None:  # type: ignore[no-untyped-def]
    if client is not None:
        await client.reset()
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())


async def add_users(engine, n: int, start: int,  # type: ignore[no-untyped-def]
                    client: SandboxClient | None = None) -> None:  # fmt: skip
    for lo in range(0, n, 5000):
        ids = range(start + lo, start + min(n, lo + 5000))
        if client is not None:
            await client.create_users([{"id": i, "first_name": f"U{i}", "started": True}
                                       for i in ids])  # fmt: skip
        async with engine.begin() as conn:
            await conn.execute(insert(User.__table__), [
                {"id": i, "first_name": f"U{i}", "markers": {}, "context": {},
                 "is_active": True, "gender": "unknown"} for i in ids])  # fmt: skip


async def scalar(engine, stmt):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).scalar()


async def sending(url: str, n: int, window: float, sandbox_url: str,
                  client: SandboxClient) -> dict[str, float]:  # fmt: skip
    engine = create_engine(url)
    await reset(engine, client)
    start = 1_000_000
    await add_users(engine, n, start, client)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "automations.yaml"
        path.write_text(SENDING)
        env = {"RELOVE_DATABASE_URL": url, "RELOVE_BOT_TOKEN": DEFAULT_TOKEN,
               "RELOVE_TELEGRAM_API_URL": sandbox_url, "RELOVE_LOG_LEVEL": "WARNING",
               "RELOVE_TELEGRAM_RATE_LIMIT": "30", "RELOVE_AUTOMATIONS_RATE": "30",
               "RELOVE_AUTOMATIONS_FILE": str(path), "RELOVE_AUTOMATIONS_POLL_SECONDS": "0.2"}
        proc = await spawn("worker", env=env)
        try:
            while not await scalar(engine, select(func.count()).select_from(AutomationCursor)):
                if proc.returncode is not None:
                    raise RuntimeError(f"the worker exited with {proc.returncode}")
                await asyncio.sleep(0.1)
            await client.reset_stats()
            async with engine.begin() as conn:
                await conn.execute(text(ENTER_SQL), {"name": "bench.entered", "lo": start})
            t0 = time.monotonic()
            runs = select(func.count()).select_from(AutomationRun)
            while True:
                if await scalar(engine, runs) >= n:
                    break
                await asyncio.sleep(0.05)
            enqueue = time.monotonic() - t0
            while True:
                if (await client.stats())["messages"] >= 1:
                    break
                await asyncio.sleep(0.05)
            m0, t1 = (await client.stats())["messages"], time.monotonic()
            await asyncio.sleep(window)
            m1, t2 = (await client.stats())["messages"], time.monotonic()
            stats = await client.stats()
            rss = peak_rss_mb(proc.pid)
        finally:
            await stop(proc)
    await engine.dispose()
    rate = (m1 - m0) / (t2 - t1)
    return {"users": n, "enqueue_s": enqueue, "sent_in_window": m1 - m0, "rate": rate,
            "ratio": rate / 30, "429s": stats["retry_after"], "rss_mb": rss}


async def _noop_send(recipient: Recipient, message: RenderedMessage) -> SendResult:
    return SendResult(Outcome.sent, message_id=1)


async def runner_alone(url: str, n: int) -> dict[str, float]:
    engine = create_engine(url)
    await reset(engine)
    start = 2_000_000
    await add_users(engine, n, start)
    limiter = RateLimiter(MemoryRateLimitStorage(), Limits(rate=1000))
    runner = AutomationRunner(engine, _noop_send, limiter,
                              automations=parse_automations(LOCAL, "bench.yaml"),
                              options=RunnerOptions(rate=1000, batch=1000, concurrency=50,
                                                    event_lag_seconds=0.5))  # fmt: skip
    await runner.tick()
    async with engine.begin() as conn:
        await conn.execute(text(ENTER_SQL), {"name": "bench.local", "lo": start})
    t0 = time.monotonic()
    await runner.take_in()
    entered = time.monotonic() - t0
    t1, cpu = time.monotonic(), time.process_time()
    done = select(func.count()).where(AutomationRun.status == "completed")
    while await scalar(engine, done) < n:
        await runner.run_due()
    elapsed, cpu = time.monotonic() - t1, time.process_time() - cpu
    await engine.dispose()
    return {"runs": n, "intake_s": entered, "run_s": elapsed, "runs_per_s": n / elapsed,
            "steps_per_s": 3 * n / elapsed, "cpu_ms_per_run": 1000 * cpu / n}


async def enqueue_alone(url: str, n: int) -> dict[str, float]:
    engine = create_engine(url)
    await reset(engine)
    start = 3_000_000
    await add_users(engine, n, start)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    limiter = RateLimiter(MemoryRateLimitStorage(), Limits(rate=1000))
    runner = AutomationRunner(engine, _noop_send, limiter,
                              automations=parse_automations(SENDING, "bench.yaml"),
                              options=RunnerOptions(event_lag_seconds=0.5))  # fmt: skip
    await runner.take_in()  # the cursor starts at the end of the history
    async with engine.begin() as conn:
        await conn.execute(text(ENTER_SQL), {"name": "bench.entered", "lo": start})
    t0 = time.monotonic()
    entered = 0
    while entered < n:
        entered += await runner.take_in()
    elapsed = time.monotonic() - t0
    await engine.dispose()
    return {"users": n, "enqueue_s": elapsed, "entries_per_s": n / elapsed}


def report(name: str, r: dict[str, float], target: str) -> None:
    figures = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in r.items())  # fmt: skip
    print(f"({name}) {figures}  [target: {target}]", flush=True)


async def main(args: argparse.Namespace) -> None:
    import_all_models()
    async with AsyncExitStack() as stack:
        if args.sqlite:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        else:
            url = await stack.enter_async_context(scratch_postgres("relove_bench_auto"))
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        print(f"database: {'SQLite' if args.sqlite else 'PostgreSQL'}; load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        if args.enqueue_users:
            report("e", await enqueue_alone(url, args.enqueue_users), "enqueue_s ≤ 5")
        if args.runner_users:
            report("r", await runner_alone(url, args.runner_users), "runs/s (no target)")
        if args.users:
            port = free_port()
            sandbox = await spawn("sandbox", "--port", str(port), "--rate", "30", "--burst",
                                  "30", env={"RELOVE_LOG_LEVEL": "WARNING"})  # fmt: skip
            stack.push_async_callback(stop, sandbox)
            client = await stack.enter_async_context(SandboxClient(f"http://127.0.0.1:{port}"))
            await client.wait_until_ready(20)
            r = await sending(url, args.users, args.window, f"http://127.0.0.1:{port}", client)
            report("a+b+c", r, "enqueue_s ≤ 5, ratio ≥ 0.95, 429s = 0, rss_mb ≤ 150")
        print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of sending measured")
    parser.add_argument("--runner-users", type=int, default=10_000)
    parser.add_argument("--enqueue-users", type=int, default=0,
                        help="(e): users entering at once, measured in process")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite instead")
    asyncio.run(main(parser.parse_args()))
