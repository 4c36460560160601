"""Benchmark: the REST API's own CPU per request, in process — the ASGI app that ``relove serve``
builds (``create_server_app``) called directly, without HTTP, on ``bench/api.py``'s database
``bench_api`` (1M users; run bench/api.py once first). On a shared machine the CPU time per
request moves far less with the load than any rate does.

    .venv/bin/python bench/api_inprocess.py [--url postgresql://postgres@127.0.0.1:5432/bench_api]
                                            [--requests 2000] [--kind get|patch]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from typing import Any

from sqlalchemy import text

from relove.api.tokens import create_token


async def _run(url: str, kind: str, n: int) -> dict[str, Any]:
    os.environ.update(RELOVE_DATABASE_URL=url, RELOVE_LOG_LEVEL="WARNING",
                      RELOVE_API_POOL_SIZE="32")  # fmt: skip
    os.environ.pop("RELOVE_REDIS_URL", None)
    from relove.api.server import create_server_app

    app = create_server_app()
    ctx = app.state.api
    async with ctx.sessions.begin() as s:
        _, token = await create_token(s, f"bench-inprocess-{os.getpid()}", ["admin"],
                                      rate_limit=1e6, rate_burst=10**7)  # fmt: skip
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
               (b"content-type", b"application/json")]  # fmt: skip
    rng = random.Random(1)

    async def one() -> None:
        uid = rng.randint(1, 1_000_000)
        method, body = "GET", b""
        if kind == "patch":
            method = "PATCH"
            body = json.dumps({"markers": {"$set": {"bench": rng.randint(0, 10**6)}}}).encode()
        path = f"/api/v1/users/{uid}"
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "state": {},
                 "headers": [*headers, (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{method} {path} answered {sent[0]['status']}")

    try:
        for _ in range(200):  # warm-up: pool, statement caches
            await one()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            await one()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        async with ctx.sessions.begin() as s:
            await s.execute(text("DELETE FROM api_tokens WHERE name LIKE 'bench-inprocess-%'"))
        await ctx.engine.dispose()
    return {"kind": kind, "requests": n, "cpu_ms_per_request": cpu * 1000 / n,
            "wall_ms_per_request": wall * 1000 / n}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/bench_api")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--kind", choices=["get", "patch"], action="append")
    args = parser.parse_args()
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for kind in args.kind or ["get", "patch"]:
        r = asyncio.run(_run(args.url, kind, args.requests))
        print(f"{kind}: {r['cpu_ms_per_request']:.3f} ms CPU per request, "
              f"{r['wall_ms_per_request']:.3f} ms wall (one at a time, PostgreSQL included)")
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
