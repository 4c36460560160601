"""Benchmark: segment counts and breakdowns over 1,000,000 users on PostgreSQL.

Creates (once) a database ``relove_bench`` with 1M users using one set-based
``INSERT … SELECT FROM generate_series``, then times, in the same run, each filter through the
product (``count_users``: parse → compile → execute) and the equivalent hand-written SQL, and the
product's breakdowns against hand-written GROUP BYs. Prints the medians, the ratios and whether
the targets hold: compiled ≤ 1.2 × hand-written for every filter, a selective filter (≤ 0.1 %)
in ≤ 20 ms, a breakdown by a marker over 1M users in ≤ 0.5 s.

    .venv/bin/python bench/segments.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                       [--users 1000000] [--recreate] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from relove.analytics import breakdown
from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.db.migrate import upgrade
from relove.segments import count_users

BENCH_DB = "relove_bench"
RATIO_TARGET = 1.2
SELECTIVE_MS = 20.0
BREAKDOWN_MS = 500.0
#: Below this difference a ratio measures the fixed cost of parsing and compiling (~0.4 ms),
#: not the query: sub-millisecond index lookups pass on the absolute difference.
ABS_SLACK_MS = 1.0

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
    ("breakdown by list marker interests", "interests",
     """SELECT e, count(*) FROM users, jsonb_array_elements(CASE WHEN
        jsonb_typeof(markers->'interests') = 'array' THEN markers->'interests'
        ELSE jsonb_build_array(markers->'interests') END) e
        GROUP BY 1 ORDER BY 2 DESC LIMIT 21"""),
    ("breakdown by column gender", "gender",
     """SELECT gender, count(*) FROM users GROUP BY 1 ORDER BY 2 DESC LIMIT 21"""),
]  # fmt: skip

POPULATE = """
INSERT INTO users (id, username, first_name, last_name, is_active, gender, markers, context,
                   created_at, updated_at, last_seen_at)
SELECT g,
       'user' || g,
       (ARRAY['Анна','Иван','Мария','Пётр','Жанна','Олег','Ксения'])[1 + ((g * 7) % 7)::int],
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
    if have != n:
        print(f"creating {n:,} users (one INSERT … SELECT FROM generate_series) …", flush=True)
        start = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE users CASCADE"))
            await conn.execute(text(POPULATE), {"n": n})
        print(f"  inserted in {time.perf_counter() - start:.1f} s", flush=True)
    auto = create_async_engine(make_url(normalise_url(url)), isolation_level="AUTOCOMMIT")
    async with auto.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE users"))
    await auto.dispose()
    await engine.dispose()


async def _pair_ms(
    ours: Callable[[], Awaitable[Any]], hand: Callable[[], Awaitable[Any]], runs: int
) -> tuple[float, Any, float, Any]:
    """Medians of both, runs interleaved so that both see the same machine load."""
    r_ours, r_hand = await ours(), await hand()  # warm-up (and the values to compare)
    t_ours, t_hand = [], []
    for _ in range(runs):
        for fn, times in ((ours, t_ours), (hand, t_hand)):
            start = time.perf_counter()
            await fn()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(t_ours), r_ours, statistics.median(t_hand), r_hand


async def run(url: str, runs: int) -> bool:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    ok = True
    async with sessions() as session:
        total = await count_users(session)
        print(f"\n{total:,} users on PostgreSQL; median of {runs} interleaved runs after a warm-up\n")
        print(f"{'filter':<36} {'matches':>9} {'product':>10} {'hand SQL':>10} {'ratio':>6}")
        for name, flt, sql in FILTERS:
            ours, n_ours, hand, n_hand = await _pair_ms(
                lambda f=flt: count_users(session, f), lambda s=sql: _scalar(session, s), runs
            )
            ratio = ours / hand
            flags = []
            if n_ours != n_hand:
                flags.append(f"MISMATCH: hand-written counts {n_hand}")
                ok = False
            if ratio > RATIO_TARGET and ours - hand > ABS_SLACK_MS:
                flags.append(f"ratio > {RATIO_TARGET}")
                ok = False
            if ratio > RATIO_TARGET and ours - hand <= ABS_SLACK_MS:
                flags.append(f"(+{ours - hand:.1f} ms: fixed parse/compile cost)")
            if n_ours <= total * 0.001 and ours > SELECTIVE_MS:
                flags.append(f"selective > {SELECTIVE_MS:.0f} ms")
                ok = False
            print(f"{name:<36} {n_ours:>9,} {ours:>8.1f}ms {hand:>8.1f}ms {ratio:>5.2f}x "
                  + " ".join(flags))  # fmt: skip
        print()
        for name, fld, sql in BREAKDOWNS:
            ours, b, hand, _ = await _pair_ms(
                lambda f=fld: breakdown(session, f, top=20), lambda s=sql: _rows(session, s), runs
            )
            flags = []
            if fld != "gender" and ours > BREAKDOWN_MS:
                flags.append(f"> {BREAKDOWN_MS:.0f} ms")
                ok = False
            top = ", ".join(f"{r.value}={r.count}" for r in b.rows[:3])
            print(f"{name:<36} {b.distinct:>9,} {ours:>8.1f}ms {hand:>8.1f}ms "
                  f"{ours / hand:>5.2f}x {' '.join(flags)}  [{top}]")  # fmt: skip
    await engine.dispose()
    print(
        f"\ntargets: compiled ≤ {RATIO_TARGET}× hand-written, selective ≤ {SELECTIVE_MS:.0f} ms,"
        f" marker breakdown ≤ {BREAKDOWN_MS:.0f} ms: {'MET' if ok else 'NOT MET'}"
    )
    return ok


async def _scalar(session: AsyncSession, sql: str) -> Any:
    return (await session.execute(text(sql))).scalar_one()


async def _rows(session: AsyncSession, sql: str) -> Any:
    return (await session.execute(text(sql))).all()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="any database on the PostgreSQL server (relove_bench is created)")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--recreate", action="store_true", help="drop and refill relove_bench")
    args = parser.parse_args()  # fmt: skip
    url = await _ensure_database(args.url, args.recreate)
    await _populate(url, args.users)
    return 0 if await run(url, args.runs) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
