"""Benchmark: segment counts and breakdowns over 1,000,000 users on PostgreSQL.

Creates (once) a database ``relove_bench`` with 1M users using one set-based
``INSERT … SELECT FROM generate_series``, then times, in the same run and the same session
(same driver, same transaction, same settings), interleaved, each filter three ways:

* **product** — ``count_users`` end to end: parse (cached) → compile → execute;
* **compiled SQL** — the statement ``count_users`` builds (``count_statement``), executed alone;
* **hand SQL** — the equivalent hand-written SQL, executed the same way (``session.execute``).

The ratio compiled / hand compares SQL with SQL; "overhead" is product − compiled, the Python
cost of parsing and compiling. The EXPLAIN plans of compiled and hand-written SQL are compared
node by node. Breakdowns are checked against the best hand-written GROUP BY (values and counts).
Targets: compiled ≤ 1.2 × hand-written for every filter, a selective filter (≤ 0.1 %) counts in
≤ 20 ms end to end, a breakdown by a marker over 1M users in ≤ 0.5 s. The load average is
printed before and after: the machine is shared, so read the figures with it.

    .venv/bin/python bench/segments.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                       [--users 1000000] [--recreate] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from relove.analytics import breakdown
from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.db.migrate import upgrade
from relove.segments import count_users
from relove.segments.service import count_statement

BENCH_DB = "relove_bench"
#: Bump when POPULATE changes: an older relove_bench is refilled.
DATA_VERSION = "relove bench data v2"
RATIO_TARGET = 1.2
SELECTIVE_MS = 20.0
BREAKDOWN_MS = 500.0

# (name, filter, hand-written SQL with the same meaning on this data)
FILTERS: list[tuple[str, str, str]] = [
    ("selective: rare city (0.05 %)", 'city = "Урюпинск"',
     """SELECT count(*) FROM users WHERE markers @> '{"city": "Урюпинск"}'"""),
    ("selective: rare city and VIP", 'city = "Урюпинск" and VIP',
     """SELECT count(*) FROM users WHERE markers @> '{"city": "Урюпинск"}'
        AND markers @> '{"VIP": true}'"""),
    ("list contains number, 5 %", "lucky contains 7",
     """SELECT count(*) FROM users WHERE markers @> '{"lucky": [7]}'"""),
    ("contains text (list or substring)", 'interests contains "yoga"',
     """SELECT count(*) FROM users WHERE markers @> '{"interests": ["yoga"]}'
        OR (jsonb_typeof(markers->'interests') = 'string'
            AND strpos(markers->>'interests', 'yoga') > 0)"""),
    ("equality and boolean, 2 %", 'city = "Москва" and VIP = true',
     """SELECT count(*) FROM users WHERE markers @> '{"city": "Москва", "VIP": true}'"""),
    ("number range and in", 'score >= 50 and source in ("instagram", "ads")',
     """SELECT count(*) FROM users WHERE jsonb_typeof(markers->'score') = 'number'
        AND (markers->>'score')::numeric >= 50
        AND (markers @> '{"source": "instagram"}' OR markers @> '{"source": "ads"}')"""),
    ("not contains and column", 'not tags contains "spam" and gender = "female"',
     """SELECT count(*) FROM users WHERE NOT markers @> '{"tags": ["spam"]}'
        AND gender = 'female'"""),
    ("relative date", "last_seen_at > -7d and is_active",
     """SELECT count(*) FROM users WHERE last_seen_at > now() - interval '7 days'
        AND is_active"""),
    ("icontains on a column", 'first_name icontains "ан"',
     """SELECT count(*) FROM users WHERE strpos(lower(first_name), lower('ан')) > 0"""),
    ("regex on a column", 'username ~ "^user12"',
     """SELECT count(*) FROM users WHERE username ~* '^user12'"""),
    ("context key exists", "context.summary exists",
     """SELECT count(*) FROM users WHERE coalesce(jsonb_typeof(context->'summary'), 'null')
        <> 'null'"""),
]  # fmt: skip

BREAKDOWNS: list[tuple[str, str, str]] = [
    ("breakdown by marker city", "city",
     """SELECT markers->'city', count(*) FROM users GROUP BY 1 ORDER BY 2 DESC LIMIT 21"""),
    # The best hand-written form: group the raw lists first (one scan), then expand only the
    # distinct lists into distinct elements (per-row expansion takes 3–4× longer).
    ("breakdown by list marker interests", "interests",
     """WITH g AS (SELECT markers->'interests' AS v, count(*) AS n FROM users GROUP BY 1)
        SELECT e, sum(n) FROM g, LATERAL (SELECT DISTINCT e FROM jsonb_array_elements(
          CASE WHEN jsonb_typeof(v) = 'array' THEN v ELSE jsonb_build_array(v) END) e) x
        GROUP BY 1 ORDER BY 2 DESC LIMIT 21"""),
    ("breakdown by column gender", "gender",
     """SELECT gender, count(*) FROM users GROUP BY 1 ORDER BY 2 DESC LIMIT 21"""),
]  # fmt: skip

POPULATE = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, markers, context,
                   created_at, updated_at, last_seen_at)
SELECT g,
       'user' || g,
       (ARRAY['Анна','Иван','Мария','Пётр','Жанна','Олег','Ксения'])[1 + (g % 7)::int],
       NULL,
       (g * 13) % 10 <> 0,
       (ARRAY['male','female','unknown'])[1 + ((g * 17) % 3)::int],
       jsonb_build_object(
         'city', CASE WHEN (g * 7919) % 2000 = 0 THEN 'Урюпинск'
                      ELSE (ARRAY['Москва','Санкт-Петербург','Казань','Тверь','Сочи'])
                           [1 + ((g / 7) % 5)::int] END,
         'VIP', (g / 3) % 10 = 3,
         'score', CASE WHEN g % 100 = 0 THEN to_jsonb('50'::text)
                       ELSE to_jsonb(((g * 7907) % 101)::int) END,
         'lucky', CASE WHEN (g / 17) % 20 = 0 THEN '[7, 13]'::jsonb ELSE '[1, 2]'::jsonb END,
         'source', (ARRAY['instagram','ads','organic','referral'])[1 + ((g / 11) % 4)::int],
         'interests', CASE (g / 13) % 20
                        WHEN 1 THEN '["yoga", "art"]'::jsonb
                        WHEN 2 THEN '["art", "music"]'::jsonb
                        WHEN 3 THEN '["music"]'::jsonb
                        WHEN 4 THEN '"yoga and more"'::jsonb
                        WHEN 5 THEN '[]'::jsonb
                        ELSE '["travel", "books"]'::jsonb END
       ) || CASE WHEN (g * 59) % 4 = 0 THEN '{"tags": ["spam"]}'::jsonb ELSE '{}'::jsonb END,
       CASE WHEN g % 3 = 0 THEN '{"summary": "Любит йогу и путешествия"}'::jsonb
            ELSE '{}'::jsonb END,
       now() - ((g * 61) % 365)::int * interval '1 day',
       now(),
       CASE WHEN g % 10 = 9 THEN NULL
            ELSE now() - ((g * 67) % (90 * 24))::int * interval '1 hour' END
FROM (SELECT s::bigint AS g FROM generate_series(1, CAST(:n AS integer)) AS s) AS numbers
"""


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


async def _populate(url: str, n: int) -> None:
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
    auto = create_async_engine(make_url(normalise_url(url)), isolation_level="AUTOCOMMIT")
    async with auto.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE users"))
    await auto.dispose()
    await engine.dispose()


async def _timed(fns: list[Callable[[], Awaitable[Any]]], runs: int) -> list[list[float]]:
    """Milliseconds of each, ``runs`` rounds after a warm-up; a round runs each once, the order
    rotating between rounds so that all of them see the same machine load."""
    for fn in fns:
        await fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(runs):
        for i in [(r + k) % len(fns) for k in range(len(fns))]:
            start = time.perf_counter()
            await fns[i]()
            times[i].append((time.perf_counter() - start) * 1000)
    return times


def _paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median of the per-round ratios: each pair ran back to back under the same load, so a
    load spike moves both (steadier than a ratio of two medians on a shared machine)."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class _LastStatement:
    """The last statement and parameters the engine sent (to EXPLAIN the compiled SQL)."""

    def __init__(self, engine: Any) -> None:
        self.statement, self.params = "", ()
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        self.statement, self.params = statement, params


async def _plan(session: AsyncSession, sql: str, params: Any = ()) -> list[str]:
    """The plan's nodes (type and index), to compare compiled and hand-written SQL."""
    raw = await (await session.connection()).get_raw_connection()
    plan = await raw.driver_connection.fetchval("EXPLAIN (FORMAT JSON) " + sql, *params)
    plan = json.loads(plan) if isinstance(plan, str) else plan  # the json codec may decode it

    def walk(node: dict[str, Any]) -> list[str]:
        name = node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else "")
        return [name] + [n for child in node.get("Plans", []) for n in walk(child)]

    return walk(plan[0]["Plan"])


async def run(url: str, runs: int) -> bool:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    last = _LastStatement(engine)
    ok = True
    print(f"\n{_load()} before the run")
    async with sessions() as session:
        total = await count_users(session)
        print(f"{total:,} users on PostgreSQL; medians of {runs} interleaved runs after a warm-up"
              " (ratio: median of the per-run ratios), one session and transaction for all\n")
        print(f"{'filter':<36} {'matches':>9} {'product':>9} {'compiled':>9} {'hand SQL':>9}"
              f" {'ratio':>6} {'overhead':>8}  plan")  # fmt: skip
        for name, flt, sql in FILTERS:
            stmt = await count_statement(session, flt)
            n_ours = (await session.execute(stmt)).scalar_one()
            ours_plan = await _plan(session, last.statement, last.params)
            hand_plan = await _plan(session, sql)
            n_hand = await _scalar(session, sql)
            times = await _timed(
                [lambda f=flt: count_users(session, f),
                 lambda st=stmt: session.execute(st),
                 lambda s=sql: _scalar(session, s)], runs)  # fmt: skip
            product, compiled, hand = (statistics.median(t) for t in times)
            ratio = _paired_ratio(times[1], times[2])
            flags = []
            if n_ours != n_hand:
                flags.append(f"MISMATCH: hand-written counts {n_hand}")
                ok = False
            if ratio > RATIO_TARGET:
                flags.append(f"ratio > {RATIO_TARGET}")
                ok = False
            if n_ours <= total * 0.001 and product > SELECTIVE_MS:
                flags.append(f"selective > {SELECTIVE_MS:.0f} ms")
                ok = False
            shape = "same" if ours_plan == hand_plan else f"{ours_plan} vs {hand_plan}"
            print(f"{name:<36} {n_ours:>9,} {product:>7.1f}ms {compiled:>7.1f}ms {hand:>7.1f}ms"
                  f" {ratio:>5.2f}x {product - compiled:>+6.2f}ms"
                  f"  {shape} {' '.join(flags)}")  # fmt: skip
        print()
        for name, fld, sql in BREAKDOWNS:
            b = await breakdown(session, fld, top=20)
            pairs = [(_decode(v), int(c)) for v, c in await _rows(session, sql)]
            expected = {v: c for v, c in pairs if v is not None}  # "not set" is listed apart
            got = {r.value: r.count for r in b.rows}
            times = await _timed(
                [lambda f=fld: breakdown(session, f, top=20), lambda s=sql: _rows(session, s)], runs
            )
            ours, hand = (statistics.median(t) for t in times)
            flags = []
            if expected != got:
                flags.append(f"MISMATCH: hand-written {expected}")
                ok = False
            if fld != "gender" and ours > BREAKDOWN_MS:
                flags.append(f"> {BREAKDOWN_MS:.0f} ms")
                ok = False
            top = ", ".join(f"{r.value}={r.count}" for r in b.rows[:3])
            print(f"{name:<36} {b.distinct:>9,} {ours:>7.1f}ms {'':>9} {hand:>7.1f}ms "
                  f"{_paired_ratio(*times):>5.2f}x {' '.join(flags)}  [{top}]")  # fmt: skip
    await engine.dispose()
    print(f"\n{_load()} after the run")
    print(
        f"targets: compiled ≤ {RATIO_TARGET}× hand-written, selective ≤ {SELECTIVE_MS:.0f} ms,"
        f" marker breakdown ≤ {BREAKDOWN_MS:.0f} ms: {'MET' if ok else 'NOT MET'}"
    )
    return ok


def _decode(value: Any) -> Any:
    """A hand-written GROUP BY key: jsonb arrives as JSON text, columns as they are."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


async def _scalar(session: AsyncSession, sql: str) -> Any:
    return (await session.execute(text(sql))).scalar_one()


async def _rows(session: AsyncSession, sql: str) -> Any:
    return (await session.execute(text(sql))).all()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="any database on the PostgreSQL server (relove_bench is created)")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--recreate", action="store_true", help="drop and refill relove_bench")
    args = parser.parse_args()  # fmt: skip
    url = await _ensure_database(args.url, args.recreate)
    await _populate(url, args.users)
    return 0 if await run(url, args.runs) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
