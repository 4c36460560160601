"""Benchmark: the API's events and segments routes over real HTTP (PostgreSQL).

A scratch database gets ``--users`` users (one ``INSERT … SELECT FROM generate_series``); one
uvicorn worker (``relove serve``) serves it in a child process, and this process is the load:

* ``POST /events`` — batches of 1,000 events with client ids (dedupe on): events/s, sequential;
* ``POST /events`` again with the same ids — all duplicates: events/s;
* ``GET /users/{id}/events`` and ``GET /events?name=`` — p50/p95 of a 50-event page;
* ``POST /segments:count`` vs ``count_users`` in-process for the same filter — the paired
  median ratio (target ≤ 1.1×: the API adds HTTP and auth, not another query).

The load average is printed with the figures: the machine is shared, read them with it.

    .venv/bin/python bench/api_events.py [--users 100000] [--batches 20] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench._common import scratch_postgres  # noqa: E402
from relove.api.tokens import create_token  # noqa: E402
from relove.db.engine import create_engine, create_session_factory  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.segments import count_users  # noqa: E402

POPULATE = """
INSERT INTO users (id, username, first_name, is_active, gender, markers, context,
                   created_at, updated_at)
SELECT g, 'user' || g, 'Анна', true, 'unknown',
       jsonb_build_object('city', (ARRAY['Москва','Казань','Тверь','Сочи'])[1 + (g % 4)::int],
                          'score', (g * 7907) % 101, 'vip', g % 10 = 3),
       '{}'::jsonb, now() - make_interval(secs => g), now()
FROM generate_series(1, :n) AS g
"""
FILTERS = ['city = "Москва" and score > 50', "vip", 'city = "Сочи" or score < 3']


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _wait_up(client: httpx.AsyncClient, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if (await client.get("/api/v1/openapi.json")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("relove serve did not come up")


async def _timed(fn: Any, runs: int) -> list[float]:
    await fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def run(users: int, batches: int, runs: int) -> None:
    async with scratch_postgres("relove_bench_api") as url:
        engine = create_engine(url)
        await upgrade(engine)
        sessions = create_session_factory(engine)
        async with engine.begin() as conn:
            await conn.execute(text(POPULATE), {"n": users})
            await conn.execute(text("ANALYZE users"))
        async with sessions.begin() as session:
            _, token = await create_token(session, "bench", ["admin"], rate_limit=1e6,
                                          rate_burst=10_000_000)  # fmt: skip
        port = _free_port()
        env = {**os.environ, "RELOVE_DATABASE_URL": url, "RELOVE_LOG_LEVEL": "WARNING"}
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relove", "serve", "--port", str(port), env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            headers = {"Authorization": f"Bearer {token}"}
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
                await _wait_up(client, time.monotonic() + 120)
                print(f"{users:,} users; one uvicorn worker; {_load()}")
                await _events(client, users, batches, runs)
                await _counts(client, sessions, runs)
                print(_load())
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), timeout=30)
            await engine.dispose()


async def _events(client: httpx.AsyncClient, users: int, batches: int, runs: int) -> None:
    bodies = [{"events": [{"id": str(uuid.uuid4()), "user_id": 1 + (b * 1000 + i) % users,
                           "name": "order.paid", "props": {"sum": i}} for i in range(1000)]}
              for b in range(batches)]  # fmt: skip
    for label, expect in (("new", "recorded"), ("retried (all duplicates)", "duplicates")):
        start = time.perf_counter()
        for body in bodies:
            r = await client.post("/api/v1/events", json=body)
            assert r.status_code == 200 and r.json()[expect] == 1000, r.text[:300]
        seconds = time.perf_counter() - start
        print(f"POST /events, {batches} × 1,000 {label}: {batches * 1000 / seconds:,.0f} events/s")
    for label, path in (("GET /users/{id}/events", "/api/v1/users/1/events"),
                        ("GET /events?name=order.paid", "/api/v1/events?name=order.paid")):
        times = await _timed(lambda p=path: client.get(p), runs)  # type: ignore[misc]
        print(f"{label}: p50 {statistics.median(times):.1f} ms, p95 {_pct(times, 0.95):.1f} ms")


async def _counts(client: httpx.AsyncClient, sessions: Any, runs: int) -> None:
    for flt in FILTERS:
        async def http(f: str = flt) -> int:
            r = await client.post("/api/v1/segments:count", json={"filter": f})
            return int(r.json()["count"])

        async def direct(f: str = flt) -> int:
            async with sessions() as session:
                return await count_users(session, f)

        assert await http() == await direct()
        api_ms: list[float] = []
        cli_ms: list[float] = []
        for _ in range(runs):  # paired rounds: both under the same load
            for fn, out in ((http, api_ms), (direct, cli_ms)):
                start = time.perf_counter()
                await fn()
                out.append((time.perf_counter() - start) * 1000)
        pairs = [a / c for a, c in zip(api_ms, cli_ms, strict=True)]
        print(f"segments:count {flt!r}: API {statistics.median(api_ms):.1f} ms, in-process "
              f"{statistics.median(cli_ms):.1f} ms, ratio {statistics.median(pairs):.2f}×")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(run(args.users, args.batches, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
