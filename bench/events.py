"""History benchmark (PostgreSQL): ingest, timeline, behavioural count, funnel, retention,
dropping a month.

1. **Ingest** through the product's batch path (``record_many``: one ``INSERT … SELECT`` from
   one bound JSON array per batch, in its own transaction), ``--writers`` concurrent writers,
   into the partitioned table with all its indexes. Target ≥ 50,000 events/s.
2. A history of ``--events`` events (default 10M) for ``--users`` users (default 1M) over the
   last 120 days, built once in SQL (``generate_series``; kept between runs, ``--recreate``
   rebuilds it), then timed on it:
   * one user's timeline page (``timeline``, 50 events, first page and the next): p95 ≤ 5 ms;
   * users who did an event in the last 7 days (``did "broadcast.clicked" within 7d``: the
     segment count when the language has it, else the same EXISTS in SQL): ≤ 300 ms;
   * a 3-step funnel over 30 days (``funnel``): ≤ 2 s;
   * 8-week retention (``retention``): ≤ 2 s;
   * dropping a month partition (``drop_partitions_before`` on a filled month): ≤ 1 s.

``--skip-ingest`` skips step 1 (the history is built, or reused, and timed). Every query is a
median of ``--runs`` runs after one warm-up, the partition drop too (one filled month per run).

``--did-only`` builds (or reuses) the history and times only the behavioural segment counts:
``did X within 7d`` (the target), ``did X >= 5 times within 30d`` and ``not did X within 30d``
(``--explain`` also prints their plans).

Medians (and p95 where it is the target) are printed with the load average before and after;
the machine is shared, so read the figures with it.

    createdb -h 127.0.0.1 -U postgres bench_events
    RELOVE_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_events \\
        .venv/bin/python bench/events.py [--events 10000000] [--users 1000000] [--recreate]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.exc import CompileError  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bench._common import server_url  # noqa: E402
from relove.analytics.events import funnel, retention  # noqa: E402
from relove.db.engine import create_engine, create_session_factory  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.events import NewEvent, record_many  # noqa: E402
from relove.events.partitions import (  # noqa: E402
    add_months,
    drop_partitions_before,
    ensure_partitions,
    month_start,
    partition_name,
)
from relove.events.timeline import timeline  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001

DATA_VERSION = "relove events bench v1"
DAYS = 120
#: (name, share of events): what a community bot's history looks like.
MIX = [
    ("message.received", 0.45), ("command.used", 0.10), ("button.pressed", 0.15),
    ("marker.changed", 0.15), ("delivery.sent", 0.10), ("broadcast.clicked", 0.03),
    ("order.paid", 0.02),
]  # fmt: skip
TARGETS = {"ingest": 50_000, "timeline_p95_ms": 5, "did_ms": 300, "funnel_ms": 2000,
           "retention_ms": 2000, "drop_ms": 1000}  # fmt: skip


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def _ms_runs(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    """Milliseconds of ``runs`` runs of ``fn``, printed as they come (after one warm-up)."""
    await fn()
    out = [t * 1000 for t in await _timed(fn, runs)]
    print(f"    runs: {_runs(out)} ms — {_load()}")
    return out


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


async def _timed(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - start)
    return out


# -- 1. ingest ---------------------------------------------------------------------------------
async def ingest(engine: AsyncEngine, n: int, *, batch: int, writers: int,
                 users: int) -> float:  # fmt: skip
    """Events/s through ``record_many`` (``writers`` concurrent transactions)."""
    sessions = create_session_factory(engine)
    rng = random.Random(1)
    names = [name for name, _ in MIX]
    batches = [
        [NewEvent(rng.randrange(1, users + 1), rng.choice(names), {"n": i + j})
         for j in range(batch)]
        for i in range(0, n, batch)
    ]  # fmt: skip
    queue = list(reversed(batches))

    async def writer() -> None:
        while queue:
            events = queue.pop()
            async with sessions.begin() as s:
                await record_many(s, events, source="api", actor="bench")

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return n / (time.perf_counter() - start)


# -- 2. the history ----------------------------------------------------------------------------
async def _populate(engine: AsyncEngine, events: int, users: int, now: datetime) -> None:
    """``users`` users created over the last DAYS days and ``events`` events spread over the
    same period, in set-based SQL (setup, not the measured path)."""
    cases, acc = [], 0.0
    for name, share in MIX:
        acc += share
        cases.append(f"WHEN r < {acc:.4f} THEN '{name}'")
    name_sql = "CASE " + " ".join(cases) + " ELSE 'message.received' END"
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE events, users CASCADE"))
        await conn.run_sync(lambda c: ensure_partitions(c, now=now, back=DAYS // 30 + 1))
        await conn.execute(text(
            "INSERT INTO users (id, first_name, is_active, gender, context, markers, created_at,"
            " updated_at, last_seen_at) "
            "SELECT g, 'U' || g, true, 'unknown', '{}', "
            "jsonb_build_object('city', (ARRAY['Москва','Тверь','Казань'])[1 + g % 3]), "
            "CAST(:now AS timestamptz) "
            "- make_interval(secs => (g::bigint * 7919 % (:days * 86400))), "
            ":now, :now "
            "FROM generate_series(1, :users) AS g"
        ), {"now": now, "days": DAYS, "users": users})  # fmt: skip
        # Each event: a user (skewed: a few talk a lot), a name from the mix, a moment after
        # the user was created.
        await conn.execute(text(
            "INSERT INTO events (user_id, name, props, source, actor, at) "
            f"SELECT u, {name_sql}, '{{}}'::jsonb, 'bot', NULL, "
            "  greatest(c, CAST(:now AS timestamptz) "
            "             - make_interval(secs => (random() * :days * 86400)::int)) "
            "FROM (SELECT g, random() AS r, "
            "        1 + floor(power(random(), 2) * :users)::bigint AS u FROM "
            "      generate_series(1, :events) AS g) AS s "
            "JOIN LATERAL (SELECT created_at AS c FROM users WHERE id = s.u) AS uc ON true"
        ), {"now": now, "days": DAYS, "users": users, "events": events})  # fmt: skip
        await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (v text)"))
        await conn.execute(text("DELETE FROM bench_meta"))
        await conn.execute(text("INSERT INTO bench_meta VALUES (:v)"),
                           {"v": f"{DATA_VERSION} {events} {users} {now.isoformat()}"})  # fmt: skip
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE users"))
        await conn.execute(text("VACUUM ANALYZE events"))


async def _existing(engine: AsyncEngine, events: int, users: int) -> datetime | None:
    async with engine.connect() as conn:
        try:
            v = (await conn.execute(text("SELECT v FROM bench_meta"))).scalar()
        except Exception:
            return None
    if not v or not v.startswith(f"{DATA_VERSION} {events} {users} "):
        return None
    return datetime.fromisoformat(v.rsplit(" ", 1)[1])


async def did_count(engine: AsyncEngine, now: datetime) -> Callable[[], Awaitable[Any]]:
    """The product's segment count when the language has ``did``, else the equivalent SQL."""
    sessions = create_session_factory(engine)
    try:
        from relove.segments import count_users, parse_filter

        parse_filter('did "broadcast.clicked" within 7d')
    except Exception:
        sql = text("SELECT count(*) FROM users WHERE EXISTS (SELECT 1 FROM events e WHERE "
                   "e.user_id = users.id AND e.name = 'broadcast.clicked' AND e.at >= :since)")

        async def by_sql() -> Any:
            async with engine.connect() as conn:
                return (await conn.execute(sql, {"since": now - timedelta(days=7)})).scalar()

        print("  (did: the segment language has no `did` yet: timing the equivalent SQL)")
        return by_sql

    async def by_segment() -> Any:
        async with sessions() as s:
            return await count_users(s, 'did "broadcast.clicked" within 7d')

    return by_segment


#: The behavioural counts ``--did-only`` times (the first is the issue's target).
DID_FILTERS = [
    'did "broadcast.clicked" within 7d',
    'did "message.received" >= 5 times within 30d',
    'not did "command.used" within 30d',
    'did "order.paid" within 7d and city = "Москва"',
]


async def did_counts(engine: AsyncEngine, runs: int, explain: bool) -> dict[str, float]:
    """Median ms of ``count_users`` for each of :data:`DID_FILTERS` (one warm-up run each)."""
    from relove.segments import count_users
    from relove.segments.service import count_statement

    sessions = create_session_factory(engine)
    out: dict[str, float] = {}
    for flt in DID_FILTERS:
        async def count(flt: str = flt) -> Any:
            async with sessions() as s:
                return await count_users(s, flt)

        n = await count()
        out[flt] = statistics.median(await _timed(count, runs)) * 1000
        print(f"  {flt}: {n:,} users, median {out[flt]:.0f} ms — {_load()}")
        if explain:
            async with sessions() as s:
                stmt = await count_statement(s, flt)
                try:
                    compiled = stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
                except CompileError:  # a JSONB containment has no literal form: no plan
                    continue
                plan = await s.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))
                print("    " + "\n    ".join(r[0] for r in plan))
    return out


async def queries(engine: AsyncEngine, users: int, now: datetime, runs: int) -> dict[str, Any]:
    sessions = create_session_factory(engine)
    rng = random.Random(2)
    out: dict[str, Any] = {}

    async def page() -> None:
        async with sessions() as s:
            first = await timeline(s, rng.randrange(1, users // 10), limit=50)
            if first.next_cursor:
                await timeline(s, first.events[0].user_id or 0, limit=50,
                               cursor=first.next_cursor)  # fmt: skip

    await _timed(page, 20)  # warm the connection pool and the cache a little
    pages = await _timed(page, max(runs * 20, 200))
    out["timeline_ms"] = (statistics.median(pages) * 1000 / 2, _p95(pages) * 1000 / 2)

    count = await did_count(engine, now)
    out["did_ms"] = await _ms_runs(count, runs)

    async def fun() -> None:
        async with sessions() as s:
            await funnel(s, ["command.used", "button.pressed", "order.paid"],
                         within=timedelta(days=7), since=now - timedelta(days=30), until=now)

    out["funnel_ms"] = await _ms_runs(fun, runs)

    async def ret() -> None:
        async with sessions() as s:
            await retention(s, period="week", cohorts=8, now=now)

    out["retention_ms"] = await _ms_runs(ret, runs)
    return out


async def drop_month(engine: AsyncEngine, now: datetime, rows: int, back: int = 24) -> float:
    """Fill the month ``back`` months before now with ``rows`` events, then time dropping it."""
    month = add_months(month_start(now), -back)
    at = datetime(month.year, month.month, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: ensure_partitions(c, now=at, ahead=0))
        await conn.execute(text(
            "INSERT INTO events (user_id, name, props, source, at) "
            "SELECT g % 1000 + 1, 'message.received', '{}'::jsonb, 'bot', "
            "CAST(:at AS timestamptz) + make_interval(secs => g % (27 * 86400)) "
            "FROM generate_series(1, :n) AS g"
        ), {"at": at, "n": rows})  # fmt: skip
    start = time.perf_counter()
    async with engine.begin() as conn:
        dropped = await conn.run_sync(
            lambda c: drop_partitions_before(c, at + timedelta(days=40)))
    elapsed = time.perf_counter() - start
    assert partition_name(month) in dropped, dropped
    return elapsed


async def drop_months(engine: AsyncEngine, now: datetime, rows: int, runs: int) -> list[float]:
    """``runs`` times: fill a month (oldest first) and drop it."""
    return [await drop_month(engine, now, rows, back=24 + runs - i) for i in range(runs)]


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--drop-rows", type=int, default=500_000)
    parser.add_argument("--recreate", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true",
                        help="reuse the built history, time only the queries and the drop")
    parser.add_argument("--did-only", action="store_true",
                        help="only the behavioural segment counts (no ingest, no drop)")
    parser.add_argument("--explain", action="store_true", help="with --did-only: print plans")
    args = parser.parse_args()
    url = server_url()
    if not url.startswith("postgresql"):
        print("PostgreSQL only: set RELOVE_BENCH_DATABASE_URL")
        return 2
    engine = create_engine(url)
    await upgrade(engine)
    print(f"start: {_load()}")

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: ensure_partitions(c))
        await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (v text)"))
    if args.did_only:
        return await did_only(engine, args)
    rates = []
    for _ in range(0 if args.skip_ingest else 3):
        async with engine.begin() as conn:  # ingest into a clean table each time
            await conn.execute(text("DELETE FROM bench_meta"))
            await conn.execute(text("TRUNCATE events"))
        rates.append(await ingest(engine, args.ingest, batch=args.batch, writers=args.writers,
                                  users=args.users))  # fmt: skip
    ingest_rate = statistics.median(rates) if rates else float("nan")
    if rates:
            print(f"ingest: {ingest_rate:,.0f} events/s (median of {len(rates)}; "
              f"{', '.join(f'{r:,.0f}' for r in rates)}) — batches of {args.batch}, "
              f"{args.writers} writers — {_load()}")

    now = None if args.recreate else await _existing(engine, args.events, args.users)
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
        start = time.perf_counter()
        print(f"building {args.events:,} events for {args.users:,} users …")
        await _populate(engine, args.events, args.users, now)
        print(f"  built in {time.perf_counter() - start:.0f} s — {_load()}")
    result = await queries(engine, args.users, now, args.runs)
    med, p95 = result["timeline_ms"]
    print(f"timeline page (50 events): median {med:.2f} ms, p95 {p95:.2f} ms — {_load()}")
    did, fun, ret = (statistics.median(result[k]) for k in ("did_ms", "funnel_ms", "retention_ms"))
    print(f"did within 7d (count): median {did:.0f} ms — {_load()}")
    print(f"3-step funnel over 30 days: median {fun:.0f} ms — {_load()}")
    print(f"8-week retention: median {ret:.0f} ms — {_load()}")
    drops = [t * 1000 for t in await drop_months(engine, now, args.drop_rows, args.runs)]
    drop = statistics.median(drops)
    print(f"drop a month partition ({args.drop_rows:,} rows): median {drop:.0f} ms "
          f"({_runs(drops)}) — {_load()}")
    await engine.dispose()
    ok = ((not rates or ingest_rate >= TARGETS["ingest"]) and p95 <= TARGETS["timeline_p95_ms"]
          and did <= TARGETS["did_ms"] and fun <= TARGETS["funnel_ms"]
          and ret <= TARGETS["retention_ms"] and drop <= TARGETS["drop_ms"])  # fmt: skip
    print(("all targets met" if ok else "some targets missed") + f" — end: {_load()}")
    return 0 if ok else 1


async def did_only(engine: AsyncEngine, args: argparse.Namespace) -> int:
    now = None if args.recreate else await _existing(engine, args.events, args.users)
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
        start = time.perf_counter()
        print(f"building {args.events:,} events for {args.users:,} users …")
        await _populate(engine, args.events, args.users, now)
        print(f"  built in {time.perf_counter() - start:.0f} s — {_load()}")
    print(f"behavioural counts over {args.events:,} events / {args.users:,} users "
          f"(history built {now:%Y-%m-%d %H:%M}Z, windows end now):")  # fmt: skip
    result = await did_counts(engine, args.runs, args.explain)
    await engine.dispose()
    ok = result[DID_FILTERS[0]] <= TARGETS["did_ms"]
    print(f"did within 7d: {'target met' if ok else 'target missed'} "
          f"(≤ {TARGETS['did_ms']} ms) — end: {_load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
