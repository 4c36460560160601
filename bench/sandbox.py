"""Sandbox throughput: can a broadcast of 20,000 messages run at 1000/s against it?

    .venv/bin/python bench/sandbox.py [--users 20000] [--rate 1000]

The sandbox runs as its own process (`relove sandbox`), like next to a real bot. Prints the time
to create the simulated users, the sandbox's raw capacity (limits off, as fast
as aiogram can send: the baseline of this run) and a paid broadcast paced at ``--rate`` with the
limits on: its duration, achieved rate, peak rate in any one second, and 429s (expected: 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator

import psutil
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiolimiter import AsyncLimiter

from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN

CONCURRENCY = 64


@contextlib.asynccontextmanager
async def sandbox_process() -> AsyncIterator[tuple[str, psutil.Process]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RELOVE_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from relove.cli import entry; entry()", "sandbox",
        "--port", str(port), env=env, stdout=asyncio.subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        async with SandboxClient(url) as client:
            await client.wait_until_ready(30)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        await proc.wait()


async def _blast(bot: Bot, ids: list[int], limiter: AsyncLimiter | None) -> float:
    queue = iter(ids)
    started = time.perf_counter()

    async def worker() -> None:
        for uid in queue:
            if limiter is not None:
                await limiter.acquire()
            await bot.send_message(uid, "Новый поток стартует в понедельник 🌿",
                                   allow_paid_broadcast=True)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def main(users: int, rate: float) -> None:
    async with sandbox_process() as (url, server):
        session = AiohttpSession(api=TelegramAPIServer.from_base(url), limit=CONCURRENCY)
        bot = Bot(DEFAULT_TOKEN, session=session)
        async with SandboxClient(url) as client:
            t = time.perf_counter()
            created = await client.create_users(
                {"first_name": f"User {i}", "started": True} for i in range(users))
            print(f"create {users} users: {time.perf_counter() - t:.2f}s")
            ids = [u["id"] for u in created]

            await client.set_limits(enabled=False)
            cpu = sum(server.cpu_times()[:2])
            raw = await _blast(bot, ids, None)
            per_message = (sum(server.cpu_times()[:2]) - cpu) / users
            print(f"baseline, limits off, unpaced: {users / raw:,.0f} msg/s ({raw:.1f}s)")
            print(f"sandbox CPU per sendMessage: {per_message * 1000:.2f} ms "
                  f"(≈ {1 / per_message:,.0f} msg/s per free core)")

            await client.set_limits(enabled=True)
            await client.reset_stats()
            # Paced without a one-second burst up front (at most 1/20 s worth at once).
            paced = await _blast(bot, ids, AsyncLimiter(rate / 20, 1 / 20))
            stats = await client.stats()
            print(f"paid broadcast paced at {rate:g}/s, limits on: {paced:.1f}s, "
                  f"{users / paced:,.0f} msg/s achieved ({users / paced / rate:.0%} of the pace, "
                  f"{users / raw / rate:.1f}x headroom in the sandbox)")
            print(f"  peak in one second: {stats['global_rate_peak']}, "
                  f"429s: {stats['retry_after']}, per-chat peak: {stats['chat_rate_peak']}")
        await bot.session.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.rate))
