"""Benchmark: the REST API over 1,000,000 users on PostgreSQL, served by ONE uvicorn worker
(`relove serve`), with the load generated from a separate process (aiohttp, keep-alive).

Creates (once) a database ``bench_api`` (the test database is untouched) with 1M users in one
set-based ``INSERT … SELECT FROM generate_series``, starts ``relove serve`` on a free port and
measures, from a load process:

* ``GET /users/{id}`` (random ids, 32 connections) — requests/s; target ≥ 2,000;
* ``PATCH /users/{id}`` setting one marker (random ids, 32 connections) — requests/s;
  target ≥ 1,000;
* ``GET /users?limit=100`` page 1 and at a cursor 900,000 users deep (one connection) — p95 ms;
  target ≤ 50;
* ``POST /users:batch`` of 1,000 ``$inc`` ops, and of 1,000 ``$set`` ops (the common case,
  one statement) (2 connections) — ops/s; target ≥ 20,000;
* ``POST /segments:count`` against the in-process ``count_users`` (what the CLI runs), p50 —
  target ≤ 1.1×.

The machine is shared: the load average is printed before and after; read figures with it.
``--url`` (default ``RELOVE_BENCH_DATABASE_URL``, else the local ``test`` server) names the
server; the data always lives in its database ``bench_api``.

    .venv/bin/python bench/api.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                  [--users 1000000] [--seconds 10] [--recreate] [--only get,…]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from relove.api.schemas import encode_id_cursor
from relove.api.tokens import create_token
from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.db.migrate import upgrade

BENCH_DB = "bench_api"
DATA_VERSION = "relove bench_api data v1"
ROOT = Path(__file__).resolve().parent.parent
POOL = 32
SCENARIOS = ("get", "patch", "list1", "list900k", "batch", "batchset", "count")
#: the filter of the segments:count scenario (matches about a tenth of the users)
COUNT_FILTER = 'city = "Москва" and score > 50'

TARGETS = {"get": 2000.0, "patch": 1000.0, "list_p95_ms": 50.0, "batch_ops": 20000.0,
           "count_ratio": 1.1}

POPULATE = """
INSERT INTO users (id, username, first_name, is_active, gender, markers, context,
                   created_at, updated_at, last_seen_at)
SELECT g, 'user' || g,
       (ARRAY['Анна','Иван','Мария','Пётр','Жанна','Олег','Ксения'])[1 + (g % 7)::int],
       (g * 13) % 10 <> 0,
       (ARRAY['male','female','unknown'])[1 + ((g * 17) % 3)::int],
       jsonb_build_object(
         'city', (ARRAY['Москва','Санкт-Петербург','Казань','Тверь','Сочи'])
                 [1 + ((g / 7) % 5)::int],
         'VIP', (g / 3) % 10 = 3,
         'score', ((g * 7907) % 101)::int,
         'tags', CASE WHEN g % 4 = 0 THEN '["a", "b"]'::jsonb ELSE '[]'::jsonb END),
       CASE WHEN g % 3 = 0 THEN '{"summary": "Любит йогу"}'::jsonb ELSE '{}'::jsonb END,
       now() - ((g * 61) % 365)::int * interval '1 day', now(), now()
FROM (SELECT s::bigint AS g FROM generate_series(1, CAST(:n AS integer)) AS s) AS numbers
"""


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the database --------------------------------------------------------------------------------
async def _ensure_database(base_url: str, recreate: bool) -> str:
    base = make_url(normalise_url(base_url))
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        exists = await conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": BENCH_DB}
        )
        if exists and recreate:
            await conn.execute(text(f'DROP DATABASE "{BENCH_DB}" WITH (FORCE)'))
            exists = False
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    await admin.dispose()
    return base.set(database=BENCH_DB).render_as_string(hide_password=False)


async def _populate(url: str, n: int) -> str:
    """Fill ``bench_api`` (when it doesn't hold this data yet); returns a fresh admin token."""
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.connect() as conn:
        have = await conn.scalar(text("SELECT count(*) FROM users"))
        version = await conn.scalar(
            text("SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                 " WHERE datname = current_database()")
        )  # fmt: skip
    if have != n or version != DATA_VERSION:
        print(f"creating {n:,} users (one INSERT … SELECT FROM generate_series) …", flush=True)
        start = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE users CASCADE"))
            await conn.execute(text(POPULATE), {"n": n})
            await conn.execute(text(f"COMMENT ON DATABASE \"{BENCH_DB}\" IS '{DATA_VERSION}'"))
        print(f"  inserted in {time.perf_counter() - start:.1f} s", flush=True)
    async with engine.begin() as conn:  # the events earlier runs wrote: every run starts alike
        await conn.execute(text("TRUNCATE events"))
    await _vacuum(url, analyze=True)
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM api_tokens WHERE name LIKE 'bench-%'"))
        _, token = await create_token(
            session, f"bench-{os.getpid()}", ["admin"], rate_limit=1e6, rate_burst=10_000_000
        )
    await engine.dispose()
    return token


async def _vacuum(url: str, *, analyze: bool = False) -> None:
    """VACUUM the tables the write scenarios change. Autovacuum may be off on the server (it is
    on this machine's): without it every run's dead rows stay in users' indexes and each
    scenario's statements got slower than the one before (PostgreSQL CPU per 1,000-op batch
    45 → 85 ms over a dozen runs)."""
    auto = create_async_engine(make_url(normalise_url(url)), isolation_level="AUTOCOMMIT")
    async with auto.connect() as conn:
        await conn.execute(text(f"VACUUM {'ANALYZE ' if analyze else ''}users, events"))
    await auto.dispose()


# -- the server ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    # the pool holds the 32 connections of the load (with its default of 20, the 10 overflow
    # connections are opened — with TLS — and closed again per request: ~15 % of a GET)
    env = {**os.environ, "RELOVE_DATABASE_URL": url, "RELOVE_LOG_LEVEL": "WARNING",
           "RELOVE_SERVE_WORKERS": "1", "RELOVE_API_POOL_SIZE": str(POOL)}  # fmt: skip
    env.pop("RELOVE_REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "relove", "serve", "--port", str(port), "--workers", "1"],
        env=env, cwd=ROOT,
    )  # fmt: skip


async def _wait_up(base: str, token: str, proc: subprocess.Popen[bytes]) -> None:
    import aiohttp

    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"relove serve exited with {proc.returncode}")
            try:
                async with http.get(f"{base}/api/v1/me",
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("relove serve did not answer within 120 s")


# -- the load process ----------------------------------------------------------------------------
async def _load_run(
    base: str, token: str, kind: str, seconds: float, users: int, batch: int = 1000
) -> dict[str, Any]:
    """Run one scenario (``batch``: ops per ``users:batch`` request); returns counts and
    latencies (ms). Runs in the load process."""
    import aiohttp

    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    rng = random.Random(7)
    latencies: list[float] = []
    errors = 0
    ops = 0

    def request() -> tuple[str, str, bytes | None, int]:
        uid = rng.randint(1, users)
        if kind == "get":
            return "GET", f"/api/v1/users/{uid}", None, 1
        if kind == "patch":
            body = {"markers": {"$set": {"bench": rng.randint(0, 1_000_000)}}}
            return "PATCH", f"/api/v1/users/{uid}", json.dumps(body).encode(), 1
        if kind == "count":
            body_c = json.dumps({"filter": COUNT_FILTER}).encode()
            return "POST", "/api/v1/segments:count", body_c, 1
        if kind == "list1":
            return "GET", "/api/v1/users?limit=100", None, 1
        if kind == "list900k":
            cursor = encode_id_cursor("u", 900_000)
            return "GET", f"/api/v1/users?limit=100&cursor={cursor}", None, 1
        return bodies[next(turn) % len(bodies)]

    def batch_body() -> tuple[str, str, bytes | None, int]:
        start = rng.randint(1, users - batch)
        if kind == "batchset":  # the common case, one statement (PostgreSQL)
            items = [{"id": start + i, "markers": {"$set": {"bench": rng.randint(0, 9)}}}
                     for i in range(batch)]  # fmt: skip
            return "POST", "/api/v1/users:batch", json.dumps({"items": items}).encode(), batch
        items = [{"id": start + i, "markers": {"$inc": {"n": 1}}} for i in range(batch)]
        return "POST", "/api/v1/users:batch", json.dumps({"items": items}).encode(), batch

    # the batch bodies (1,000 items, ~3 ms of JSON each) are built before the clock starts: the
    # load process shares the machine's cores with the server, and a CRM sends what it has
    bodies = [batch_body() for _ in range(256)] if kind in ("batch", "batchset") else []
    turn = itertools.count()

    concurrency = {"get": 32, "patch": 32, "list1": 1, "list900k": 1, "batch": 2,
                   "batchset": 2, "count": 1}[kind]  # fmt: skip
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=auth) as http:

        async def one(record: bool) -> None:
            nonlocal errors, ops
            method, path, body, n = request()
            t0 = time.perf_counter()
            async with http.request(method, path, data=body) as r:
                await r.read()
                ok = r.status == 200
            if record:
                latencies.append((time.perf_counter() - t0) * 1000)
                if ok:
                    ops += n
                else:
                    errors += 1

        for _ in range(min(concurrency, 4)):  # warm-up: connections, caches
            await one(False)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one(True)

        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_started
    latencies.sort()
    return {
        "kind": kind, "requests": len(latencies), "errors": errors, "ops": ops,
        "seconds": elapsed, "rps": len(latencies) / elapsed, "ops_per_s": ops / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] if latencies else None,
        "client_cpu_ms_per_request": client_cpu * 1000 / max(len(latencies), 1),
    }  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the server process has used so far."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _backend_cpu() -> dict[int, float]:
    """CPU time (user + system) of each PostgreSQL backend connected to ``bench_api`` (found by
    its process title; other databases' backends — other people's tests — are not counted)."""
    import psutil

    out: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = proc.info
        if info["name"] == "postgres" and info["cpu_times"] is not None and (
            f" {BENCH_DB} " in " ".join(info["cmdline"] or ())
        ):
            out[proc.pid] = info["cpu_times"].user + info["cpu_times"].system
    return out


def _postgres_cpu_between(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU the bench database's backends used between two snapshots (a backend that ended in
    between is not counted), None when none could be read (the database runs elsewhere)."""
    if not after:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _in_load_process(
    base: str, token: str, kind: str, seconds: float, users: int, server_pid: int
) -> Any:
    """One scenario from a separate process; adds the server's CPU ms per request (a figure
    the machine's load barely moves, unlike the rates)."""
    cpu_before = _cpu_seconds(server_pid)
    pg_before = _backend_cpu()
    out = subprocess.run(
        [sys.executable, __file__, "--load", kind, "--base", base, "--token", token,
         "--seconds", str(seconds), "--users", str(users)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    result = json.loads(out.stdout)
    cpu = _cpu_seconds(server_pid) - cpu_before
    pg = _postgres_cpu_between(pg_before, _backend_cpu())
    requests = max(result["requests"], 1)
    result["server_cpu_ms_per_request"] = cpu * 1000 / requests
    result["postgres_cpu_ms_per_request"] = None if pg is None else pg * 1000 / requests
    print(f"  {kind}: {result}", flush=True)
    return result


async def _cli_count_ms(url: str, runs: int) -> float:
    """The CLI's count (``relove segments find`` → ``count_users`` in a session), in process:
    the median ms of ``runs`` counts of :data:`COUNT_FILTER`."""
    from relove.segments import count_users

    engine = create_engine(url)
    sessions = create_session_factory(engine)
    times = []
    for _ in range(runs + 1):  # the first warms the connection and the plan
        async with sessions() as session:
            t0 = time.perf_counter()
            await count_users(session, COUNT_FILTER)
            times.append((time.perf_counter() - t0) * 1000)
    await engine.dispose()
    return statistics.median(times[1:])


# -- main ----------------------------------------------------------------------------------------
async def _prepare(args: argparse.Namespace) -> tuple[str, str]:
    url = await _ensure_database(args.url, args.recreate)
    token = await _populate(url, args.users)
    return url, token


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("RELOVE_BENCH_DATABASE_URL",
                                                        "postgresql://postgres@127.0.0.1:5432/test"),
                        help="any database on the PostgreSQL server (bench_api is created); "
                        "default RELOVE_BENCH_DATABASE_URL")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--recreate", action="store_true", help="drop and refill bench_api")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios ({', '.join(SCENARIOS)})")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()  # fmt: skip
    if args.load:
        result = asyncio.run(_load_run(args.base, args.token, args.load, args.seconds,
                                       args.users))  # fmt: skip
        print(json.dumps(result))
        return 0

    url, token = asyncio.run(_prepare(args))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(url, port)
    try:
        asyncio.run(_wait_up(base, token, server))
        print(f"relove serve: 1 worker on {base}; {_load()}", flush=True)
        rows: list[tuple[str, str, str, bool, Any]] = []
        only = set(args.only.split(","))

        def measure(kind: str) -> Any:
            if kind in ("patch", "batch", "batchset"):  # what the last writes left, cleared
                asyncio.run(_vacuum(url))
            return _in_load_process(base, token, kind, args.seconds, args.users, server.pid)

        def row(name: str, value: str, target: str, ok: bool, r: Any) -> None:
            rows.append((name, value, target, ok and not r["errors"], r))

        if "get" in only:
            r = measure("get")
            row("GET /users/{id} (32 conn)", f"{r['rps']:,.0f} req/s", "≥ 2,000 req/s",
                r["rps"] >= TARGETS["get"], r)
        if "patch" in only:
            r = measure("patch")
            row("PATCH one marker (32 conn)", f"{r['rps']:,.0f} req/s", "≥ 1,000 req/s",
                r["rps"] >= TARGETS["patch"], r)
        for kind, label in (("list1", "page 1"), ("list900k", "cursor 900,000 deep")):
            if kind in only:
                r = measure(kind)
                row(f"GET /users?limit=100, {label}",
                    f"p95 {r['p95_ms']:.1f} ms (p50 {r['p50_ms']:.1f})", "p95 ≤ 50 ms",
                    r["p95_ms"] <= TARGETS["list_p95_ms"], r)
        for kind, op in (("batch", "$inc"), ("batchset", "$set")):
            if kind in only:
                r = measure(kind)
                row(f"POST /users:batch, 1,000 {op} ops (2 conn)",
                    f"{r['ops_per_s']:,.0f} ops/s", "≥ 20,000 ops/s",
                    r["ops_per_s"] >= TARGETS["batch_ops"], r)
        if "count" in only:
            r = measure("count")
            cli_ms = asyncio.run(_cli_count_ms(url, max(5, min(r["requests"], 30))))
            ratio = r["p50_ms"] / cli_ms
            row(f"segments:count `{COUNT_FILTER}`: API / in-process, p50",
                f"{r['p50_ms']:.0f} / {cli_ms:.0f} ms ({ratio:.2f}×)", "≤ 1.1×",
                ratio <= TARGETS["count_ratio"], r)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    print("\n| measure | result | target | met | CPU ms/request: server, PostgreSQL, load client |"
          "\n|---|---|---|---|---|")  # fmt: skip
    for name, value, target, ok, r in rows:
        pg = r["postgres_cpu_ms_per_request"]
        cpu = (f"{r['server_cpu_ms_per_request']:.2f}, {'—' if pg is None else f'{pg:.2f}'}, "
               f"{r['client_cpu_ms_per_request']:.2f}")  # fmt: skip
        print(f"| {name} | {value} | {target} | {'yes' if ok else 'NO'} | {cpu} |")
    print(f"\n{_load()}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
