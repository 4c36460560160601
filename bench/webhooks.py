"""Webhook throughput and latency against a local aiohttp sink (PostgreSQL).

    .venv/bin/python bench/webhooks.py [--events 5000] [--workers 1]

1. deliveries/s: EVENTS events committed at once, one endpoint; time until the sink has all.
2. the same with a dead endpoint (connection refused) also subscribed to everything.
3. event → delivery latency at a steady 200 events/s for 10 s (p50 / p99), measured from the
   commit of each event to its arrival at the sink.
Workers run in this process (``--workers``), or as ``--procs`` processes of their own (each
claims with SKIP LOCKED) while this process only writes events and runs the sink.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import scratch_postgres  # noqa: E402
from relove.config import Settings  # noqa: E402
from relove.db.engine import create_engine, create_session_factory  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.events import NewEvent, record_many  # noqa: E402
from relove.webhooks import service  # noqa: E402
from relove.webhooks.worker import WebhookWorker  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.count = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        self.seen.setdefault(request.headers["webhook-id"], time.monotonic())
        return web.Response(text="ok")


async def start_sink(sink: Sink) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _settings(url: str) -> Settings:
    return Settings(database_url=url, webhooks_allow_private=True, webhooks_poll_seconds=0.05,
                    _env_file=None)  # type: ignore[call-arg]


async def serve_worker(url: str) -> None:
    engine = create_engine(url)
    await WebhookWorker(engine, _settings(url)).run_forever()


class Workers:
    """``workers`` in this loop, or ``procs`` processes."""

    def __init__(self, url: str, workers: int, procs: int) -> None:
        self.url, self.workers, self.procs = url, workers, procs
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.children: list[asyncio.subprocess.Process] = []

    async def start(self, engine: object) -> None:
        if self.procs:
            for _ in range(self.procs):
                self.children.append(await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--serve-worker", self.url,
                    stderr=asyncio.subprocess.DEVNULL))
            return
        self.tasks = [
            asyncio.create_task(WebhookWorker(engine, _settings(self.url))  # type: ignore[arg-type]
                                .run_forever(self.stop))
            for _ in range(self.workers)
        ]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        for child in self.children:
            child.terminate()
            await child.wait()


async def scenario(url: str, events: int, workers: int, *, dead: bool, procs: int = 0) -> float:
    engine = create_engine(url)
    await upgrade(engine)
    sessions = create_session_factory(engine)
    sink = Sink()
    runner, base = await start_sink(sink)
    async with sessions() as session:
        await service.add_endpoint(session, base + "/hook", "*", allow_private=True)
        if dead:
            await service.add_endpoint(session, "http://127.0.0.1:9/dead", "*",
                                       allow_private=True)
        await session.commit()
    pool = Workers(url, workers, procs)
    await pool.start(engine)
    await asyncio.sleep(0.5 + procs * 3)  # let worker processes start
    start = time.monotonic()
    async with sessions() as session:
        await record_many(session, [NewEvent(i % 1000 + 1, "order.paid", {"n": i})
                                    for i in range(events)], source="api")
        await session.commit()
    while len(sink.seen) < events:  # noqa: ASYNC110 (a benchmark's plain poll)
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - start
    await pool.close()
    await runner.cleanup()
    await engine.dispose()
    return events / elapsed


async def latency(url: str, workers: int, rate: int = 200, seconds: int = 10,
                  procs: int = 0) -> list[float]:
    engine = create_engine(url)
    await upgrade(engine)
    sessions = create_session_factory(engine)
    sink = Sink()
    runner, base = await start_sink(sink)
    async with sessions() as session:
        await service.add_endpoint(session, base + "/hook", "*", allow_private=True)
        await session.commit()
    pool = Workers(url, workers, procs)
    await pool.start(engine)
    await asyncio.sleep(procs * 3)
    committed: dict[int, float] = {}
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        async with sessions() as session:
            await record_many(session, [NewEvent(1, "order.paid", {"n": n + i})
                                        for i in range(per_tick)], source="api")
            await session.commit()
        now = time.monotonic()
        for i in range(per_tick):
            committed[n + i] = now
        n += per_tick
        await asyncio.sleep(max(0.0, t0 + (n / rate) - time.monotonic()))
    deadline = time.monotonic() + 30
    while len(sink.seen) < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await pool.close()
    await runner.cleanup()
    first_id = min(int(k.removeprefix("evt_")) for k in sink.seen)
    lat = [sink.seen[k] - committed[int(k.removeprefix("evt_")) - first_id]
           for k in sink.seen]
    await engine.dispose()
    return sorted(lat)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--procs", type=int, default=0)
    parser.add_argument("--serve-worker", metavar="URL")
    args = parser.parse_args()
    if args.serve_worker:
        await serve_worker(args.serve_worker)
        return
    who = f"{args.procs} worker process(es)" if args.procs else f"{args.workers} worker(s)"
    async with scratch_postgres("relove_bench_wh") as url:
        alone = await scenario(url, args.events, args.workers, dead=False, procs=args.procs)
    async with scratch_postgres("relove_bench_wh") as url:
        with_dead = await scenario(url, args.events, args.workers, dead=True, procs=args.procs)
    async with scratch_postgres("relove_bench_wh") as url:
        lat = await latency(url, args.workers, procs=args.procs)
    print(f"deliveries/s, one endpoint ({args.events} events, {who}): "
          f"{alone:,.0f}")
    print(f"deliveries/s to the live endpoint with a dead one beside it: {with_dead:,.0f} "
          f"({(with_dead / alone - 1) * 100:+.0f} %)")
    print(f"latency at 200 events/s: p50 {statistics.median(lat) * 1000:.0f} ms, "
          f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms ({len(lat)} events)")


if __name__ == "__main__":
    asyncio.run(main())
