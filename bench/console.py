"""Benchmark: the operator console at 1,000,000 users on PostgreSQL.

Fills (once) its own database — ``bench_console`` unless ``RELOVE_BENCH_DATABASE_URL`` names
another — with 1M users (one ``INSERT … SELECT FROM generate_series``), 2M events over 90 days
(messages and commands: the dashboard's DAU/WAU/MAU), saved segments, broadcasts and console
actions. Then times, interleaved round by round:

* **server time per page**: the console app in process (httpx over ASGI: routing, session and
  CSRF checks, the services' SQL, rendering), median and p95 of ``--runs`` requests per page;
* the **live count** end to end: over real HTTP to the app served by uvicorn on a socket;
* the dashboard's figures computed cold (the page serves them from a per-process cache,
  refreshed in the background every minute).

Targets: ≤ 100 ms per page, except filters that must scan (marked); a live count of an
indexable filter ≤ 300 ms end to end. The load average is printed before and after.

    .venv/bin/python bench/console.py [--users 1000000] [--runs 15] [--recreate]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from relove.admins.login import create_login_token
from relove.config import Settings
from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.db.migrate import upgrade
from relove.db.types import utcnow
from relove.web import dashboard
from relove.web.app import create_console
from relove.web.serve import address_of, bind, serving

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_console"
DATA_VERSION = "relove console bench v1"
ADMIN = 1
PAGE_MS = 100.0
COUNT_MS = 300.0

USERS = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, markers, context,
                   created_at, updated_at, last_seen_at)
SELECT g, 'user' || g,
       (ARRAY['Анна','Иван','Мария','Пётр','Жанна','Олег','Ксения'])[1 + (g % 7)::int], NULL,
       (g * 13) % 10 <> 0, (ARRAY['male','female','unknown'])[1 + ((g * 17) % 3)::int],
       jsonb_build_object(
         'city', CASE WHEN (g * 7919) % 2000 = 0 THEN 'Урюпинск'
                      ELSE (ARRAY['Москва','Санкт-Петербург','Казань','Тверь','Сочи'])
                           [1 + ((g / 7) % 5)::int] END,
         'VIP', (g / 3) % 10 = 3,
         'score', ((g * 7907) % 101)::int,
         'source', (ARRAY['instagram','ads','organic','referral'])[1 + ((g / 11) % 4)::int],
         'interests', CASE (g / 13) % 4 WHEN 1 THEN '["yoga", "art"]'::jsonb
                      WHEN 2 THEN '["music"]'::jsonb ELSE '["travel", "books"]'::jsonb END
       ) || CASE WHEN (g * 59) % 4 = 0 THEN '{"tags": ["клуб"]}'::jsonb ELSE '{}'::jsonb END,
       CASE WHEN g % 3 = 0 THEN '{"summary": "Любит йогу"}'::jsonb ELSE '{}'::jsonb END,
       now() - ((g * 61) % 365)::int * interval '1 day', now(),
       CASE WHEN g % 10 = 9 THEN NULL
            ELSE now() - ((g * 67) % (90 * 24))::int * interval '1 hour' END
FROM generate_series(CAST(1 AS bigint), CAST(:n AS bigint)) AS g
"""
#: two events per user on average over the last 90 days (messages, commands)
EVENTS = """
INSERT INTO events (user_id, name, props, source, at)
SELECT 1 + (e * 7919) % CAST(:n AS bigint),
       CASE WHEN e % 5 = 0 THEN 'command.used' ELSE 'message.received' END,
       '{}'::jsonb, 'bot', now() - ((e * 104729) % (90 * 86400)) * interval '1 second'
FROM generate_series(CAST(1 AS bigint), CAST(:n AS bigint) * 2) AS e
"""


async def _ensure_database(url: str, recreate: bool) -> None:
    target = make_url(normalise_url(url))
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                   {"n": target.database})
        if exists and recreate:
            await conn.execute(text(f'DROP DATABASE "{target.database}" WITH (FORCE)'))
            exists = False
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    await admin.dispose()


async def _populate(url: str, n: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.connect() as conn:
        have = await conn.scalar(text("SELECT count(*) FROM users"))
        version = await conn.scalar(text(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname = current_database()"))
    if have != n or version != DATA_VERSION:
        print(f"filling {n:,} users and {2 * n:,} events …", flush=True)
        start = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE users, events, messages, segments, broadcasts, "
                                    "admins, console_sessions, login_tokens RESTART IDENTITY "
                                    "CASCADE"))
            await conn.execute(text(USERS), {"n": n})
            await conn.execute(text(EVENTS), {"n": n})
            await conn.execute(text(
                "INSERT INTO segments (name, filter, created_at, updated_at) VALUES "
                "('VIP Москва', 'VIP and city = \"Москва\"', now(), now()), "
                "('Урюпинск', 'city = \"Урюпинск\"', now(), now())"))
            await conn.execute(text(
                "INSERT INTO broadcasts (name, text, buttons, filter, status, options, "
                "created_at) SELECT 'Рассылка ' || g, 'Привет, {{ user.first_name }}!', "
                "'[]', 'city = \"Урюпинск\"', 'draft', '{}', now() FROM generate_series(1, 30) g"))
            await conn.execute(text(
                "INSERT INTO events (user_id, name, props, source, actor, at) "
                "SELECT NULL, 'segment.saved', '{}', 'console', 'admin:1', "
                "now() - g * interval '1 minute' FROM generate_series(1, 500) g"))
            await conn.execute(text(f"COMMENT ON DATABASE \"{make_url(url).database}\" "
                                    f"IS '{DATA_VERSION}'"))
        print(f"  filled in {time.perf_counter() - start:.0f} s", flush=True)
    auto = create_async_engine(make_url(normalise_url(url)), isolation_level="AUTOCOMMIT")
    async with auto.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE"))
    await auto.dispose()
    await engine.dispose()


async def _timed(fns: list[Callable[[], Awaitable[Any]]], runs: int) -> list[list[float]]:
    for fn in fns:  # warm-up (connections, caches, plans)
        await fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(runs):
        for i in [(r + k) % len(fns) for k in range(len(fns))]:
            start = time.perf_counter()
            await fns[i]()
            times[i].append((time.perf_counter() - start) * 1000)
    return times


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _q(flt: str) -> str:
    return quote(flt, safe="")


PAGES: list[tuple[str, str, bool]] = [  # (label, path, must scan)
    ("dashboard (cached figures)", "/", False),
    ("audience, no filter", "/audience", False),
    ("audience: city = \"Урюпинск\" (0.05 %)", "/audience?filter=" + _q('city = "Урюпинск"'),
     False),
    ("audience: VIP and city = \"Москва\"", "/audience?filter=" + _q('VIP and city = "Москва"'),
     False),
    ("audience: tags contains \"клуб\"", "/audience?filter=" + _q('tags contains "клуб"'), False),
    ("audience: username ~ \"^user9999\"", "/audience?filter=" + _q('username ~ "^user9999"'),
     True),
    ("user card", "/users/12345", False),
    ("segments", "/segments", False),
    ("broadcasts", "/broadcasts", False),
    ("broadcast (draft: samples)", "/broadcasts/{broadcast}", False),
    ("log", "/log", False),
    ("settings", "/settings", False),
]
COUNTS: list[tuple[str, str, bool]] = [
    ('city = "Урюпинск"', 'city = "Урюпинск"', False),
    ('VIP and city = "Москва"', 'VIP and city = "Москва"', False),
    ('tags contains "клуб" (25 % match)', 'tags contains "клуб"', False),
    ("score >= 50 (range on a marker)", "score >= 50", True),
    ('first_name icontains "ан"', 'first_name icontains "ан"', True),
]


async def _login(client: httpx.AsyncClient, sessions: Any) -> None:
    async with sessions.begin() as s:
        token = await create_login_token(s, ADMIN)
    r = await client.post(f"/auth/link/{token}")
    assert r.status_code == 303, r.text


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--recreate", action="store_true")
    args = ap.parse_args()
    url = os.environ.get("RELOVE_BENCH_DATABASE_URL", DEFAULT_URL)
    await _ensure_database(url, args.recreate)
    await _populate(url, args.users)
    print(_load())
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    settings = Settings(database_url=url, admin_ids=[ADMIN], _env_file=None)  # type: ignore[call-arg]
    app = create_console(settings, sessions)

    async with sessions() as s:
        broadcast = await s.scalar(text("SELECT min(id) FROM broadcasts"))
    pages = [(label, path.format(broadcast=broadcast), scans) for label, path, scans in PAGES]
    start = time.perf_counter()
    await dashboard.compute(sessions, utcnow())
    cold_ms = (time.perf_counter() - start) * 1000

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench") as client:
        await _login(client, sessions)

        def getter(path: str) -> Callable[[], Awaitable[Any]]:
            async def get() -> None:
                r = await client.get(path)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            return get

        page_times = await _timed([getter(p) for _, p, _ in pages], args.runs)

    sock = bind("127.0.0.1", 0)
    base = address_of(sock)
    async with serving(app, sock), httpx.AsyncClient(base_url=base) as http:
        await _login(http, sessions)

        def counter(flt: str) -> Callable[[], Awaitable[Any]]:
            async def count() -> None:
                r = await http.get("/audience/count", params={"filter": flt},
                                   headers={"HX-Request": "true"})
                assert r.status_code == 200 and "data-count" in r.text, r.text[:300]
            return count

        count_times = await _timed([counter(f) for _, f, _ in COUNTS], args.runs)
    await engine.dispose()

    print(f"\nconsole at {args.users:,} users, PostgreSQL, {args.runs} runs (ms)\n")
    print(f"{'page (server time, in process)':<44} {'median':>8} {'p95':>8}  target")
    for (label, _, scans), times in zip(pages, page_times, strict=True):
        med, p95 = statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))]
        verdict = "scans" if scans else ("ok" if med <= PAGE_MS else "OVER")
        print(f"{label:<44} {med:8.1f} {p95:8.1f}  {verdict}")
    print(f"{'dashboard figures computed cold (background, every 5 min)':<44} {cold_ms:8.1f}")
    print(f"\n{'live count over HTTP (end to end)':<44} {'median':>8} {'p95':>8}  target")
    for (label, _, scans), times in zip(COUNTS, count_times, strict=True):
        med, p95 = statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))]
        verdict = "scans" if scans else ("ok" if med <= COUNT_MS else "OVER")
        print(f"{label:<44} {med:8.1f} {p95:8.1f}  {verdict}")
    print("\n" + _load())


if __name__ == "__main__":
    asyncio.run(main())
