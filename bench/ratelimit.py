"""Shared rate limits in Redis: our Lua token bucket vs the `limits` library's Redis storage.

    .venv/bin/python bench/ratelimit.py                      # redis://127.0.0.1:6379/0
    .venv/bin/python bench/ratelimit.py --redis redis://host:6379/1 --seconds 8

(the `limits` side needs ``.venv/bin/pip install limits``; without it only ours runs)

(1) acquire latency: one process takes a slot for a message (its chat's bucket and the bot's) as
    fast as it can, never limited; median and 99th percentile per take, and CPU per take;
(2) two processes, 25 senders each, share a 30/s budget for ``--seconds``: the achieved rate and
    the most slots granted in any one second (Telegram would answer 429 above ~30).

`limits` needs two calls per message (chat, then global: a chat slot is spent even when the
global one is refused) and has no notion of a reserve for replies; the Lua script takes every
bucket of a message at once or none, and keeps the reserve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relove.telegram.ratelimit import Limits, Priority, RateLimiter  # noqa: E402
from relove.telegram.ratelimit.redis import RedisRateLimitStorage  # noqa: E402

RATE = 30


class LuaBucket:
    """relove's limiter on Redis (replies' priority: bulk)."""

    def __init__(self, url: str, prefix: str, rate: float) -> None:
        self.limiter = RateLimiter(RedisRateLimitStorage.from_url(url, prefix),
                                   Limits(rate=rate, per_chat=rate, per_chat_burst=rate,
                                          reply_reserve=0))

    async def acquire(self, chat: int) -> None:
        await self.limiter.acquire(chat, priority=Priority.bulk)

    async def close(self) -> None:
        await self.limiter.close()


class LimitsMovingWindow:
    """`limits` (async, redis-py) with a moving window: per chat, then global."""

    def __init__(self, url: str, prefix: str, rate: float) -> None:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        self.storage = RedisStorage("async+" + url, implementation="redispy", key_prefix=prefix)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.item = RateLimitItemPerSecond(int(rate))

    async def acquire(self, chat: int) -> None:
        while True:
            if await self.strategy.hit(self.item, "chat", str(chat)) and \
                    await self.strategy.hit(self.item, "global"):
                return
            stats = await self.strategy.get_window_stats(self.item, "global")
            await asyncio.sleep(max(0.001, stats.reset_time - time.time()))

    async def close(self) -> None:
        pass


BACKENDS = {"lua": LuaBucket, "limits": LimitsMovingWindow}


async def latency(backend: str, url: str, n: int) -> dict[str, float]:
    limiter = BACKENDS[backend](url, f"bench-rl:{secrets.token_hex(4)}", 1e9)
    for i in range(50):  # warm up: scripts loaded, connection open
        await limiter.acquire(i)
    takes = []
    cpu0 = time.process_time()
    for i in range(n):
        t = time.perf_counter()
        await limiter.acquire(i)
        takes.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    await limiter.close()
    takes.sort()
    return {"p50_us": 1e6 * statistics.median(takes), "p99_us": 1e6 * takes[int(n * 0.99)],
            "cpu_us": 1e6 * cpu / n}


async def child(backend: str, url: str, prefix: str, seconds: float, start: float) -> None:
    """One "process": 25 senders taking slots until ``start + seconds``; prints grant times."""
    limiter = BACKENDS[backend](url, prefix, RATE)
    grants: list[float] = []

    await limiter.acquire(0)  # connected, scripts loaded
    await asyncio.sleep(max(0.0, start - time.time()))

    async def sender(k: int) -> None:
        chat = k * 1000
        while time.time() < start + seconds:
            chat += 1
            await limiter.acquire(chat)
            grants.append(time.time())

    await asyncio.gather(*(sender(k) for k in range(25)))
    await limiter.close()
    sys.stdout.write(json.dumps(grants))


def peak_per_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while stamps[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def shared(backend: str, url: str, seconds: float) -> dict[str, float]:
    prefix = f"bench-rl:{secrets.token_hex(4)}"
    start = time.time() + 6.0  # both children imported and connected by then, even under load
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--child", backend, "--redis", url, "--prefix", prefix,
         "--seconds", str(seconds), "--start", str(start)], stdout=subprocess.PIPE)
        for _ in range(2)]
    stamps: list[float] = []
    for p in procs:
        out, _ = p.communicate()
        stamps += json.loads(out)
    inside = [t for t in stamps if start <= t <= start + seconds]
    return {"granted": len(stamps), "rate": len(inside) / seconds,
            "peak_1s": peak_per_second(stamps), "limit": RATE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=os.environ.get("RELOVE_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--takes", type=int, default=3000)
    parser.add_argument("--child")
    parser.add_argument("--prefix")
    parser.add_argument("--start", type=float)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.redis, args.prefix, args.seconds, args.start))
        return
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)
    try:
        import limits  # noqa: F401
    except ImportError:
        del BACKENDS["limits"]
    for backend in BACKENDS:
        r: dict[str, Any] = asyncio.run(latency(backend, args.redis, args.takes))
        r.update(shared(backend, args.redis, args.seconds))
        print(f"{backend}: " + ", ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
            flush=True)
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
