"""Benchmark: the console's *Scenarios & catalog* page on PostgreSQL with a large history.

In a scratch database (dropped afterwards): ``--noise`` other events (messages, commands) and
the scenario events of ``--starters`` users going through the shipped onboarding flow over 90
days (started; answered city 90 %, interests 75 %, source 50 %; completed 45 %; cancelled
5 %). Then times, in process (httpx over ASGI: session and role checks, SQL, rendering),
median and p95 of ``--runs`` requests, interleaved: the page itself, and per window its
counts fragment computed cold (the cache emptied first) and served from the cache.

    .venv/bin/python bench/scenarios.py [--starters 200000] [--noise 2000000] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import scratch_postgres  # noqa: E402
from relove.admins.login import create_login_token  # noqa: E402
from relove.config import Settings  # noqa: E402
from relove.conversation.examples import EXAMPLES_DIR  # noqa: E402
from relove.db.engine import create_engine, create_session_factory  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.web.app import create_console  # noqa: E402

ADMIN = 1
NOISE = """
INSERT INTO events (user_id, name, props, source, at)
SELECT 1 + (e * 7919) % 1000000,
       CASE WHEN e % 5 = 0 THEN 'command.used' ELSE 'message.received' END,
       '{}'::jsonb, 'bot', now() - ((e * 104729) % (90 * 86400)) * interval '1 second'
FROM generate_series(CAST(1 AS bigint), CAST(:n AS bigint)) AS e
"""
# per starter g: the share of starters that reach each row (g % 100 < share)
SCENARIO = """
INSERT INTO events (user_id, name, props, source, at)
SELECT g, s.name, s.props, 'bot',
       now() - ((g * 104729) % (90 * 86400)) * interval '1 second' + s.k * interval '1 minute'
FROM generate_series(1, CAST(:n AS bigint)) AS g
CROSS JOIN (VALUES
  (0, 100, 'scenario.started', '{"flow": "onboarding"}'::jsonb),
  (1, 90, 'scenario.answered', '{"flow": "onboarding", "step": "city", "marker": "city"}'),
  (2, 75, 'scenario.answered',
   '{"flow": "onboarding", "step": "interests", "marker": "interests"}'),
  (3, 50, 'scenario.answered', '{"flow": "onboarding", "step": "source", "marker": "source"}'),
  (4, 45, 'scenario.completed', '{"flow": "onboarding"}'),
  (5, 5, 'scenario.cancelled', '{"flow": "onboarding", "step": "interests"}')
) AS s(k, share, name, props)
WHERE g % 100 < s.share
"""


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starters", type=int, default=200_000)
    ap.add_argument("--noise", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    async with scratch_postgres("relove_bench_scenarios") as url:
        engine = create_engine(url)
        await upgrade(engine)
        start = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text(NOISE), {"n": args.noise})
            await conn.execute(text(SCENARIO), {"n": args.starters})
            total = await conn.scalar(text("SELECT count(*) FROM events"))
            scenario = await conn.scalar(
                text("SELECT count(*) FROM events WHERE name LIKE 'scenario.%'"))
        auto = create_async_engine(engine.url, isolation_level="AUTOCOMMIT")
        async with auto.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE events"))
        await auto.dispose()
        print(f"filled {total:,} events ({scenario:,} scenario events) in "
              f"{time.perf_counter() - start:.0f} s; {_load()}", flush=True)
        sessions = create_session_factory(engine)
        settings = Settings(database_url=url, admin_ids=[ADMIN], _env_file=None,  # type: ignore[call-arg]
                            scenarios_file=EXAMPLES_DIR / "scenarios.yaml",
                            catalog_file=EXAMPLES_DIR / "catalog.yaml")
        app = create_console(settings, sessions)
        console = app.state.console
        cases: dict[str, tuple[str, dict[str, str], bool]] = {"page /scenarios": (
            "/scenarios", {}, False)}
        for w in ("7d", "30d", "all"):
            cases[f"counts {w}, cold"] = ("/scenarios/counts", {"window": w}, True)
            cases[f"counts {w}, cached"] = ("/scenarios/counts", {"window": w}, False)
        times: dict[str, list[float]] = {k: [] for k in cases}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://bench") as client:
            async with sessions.begin() as s:
                token = await create_login_token(s, ADMIN)
            assert (await client.post(f"/auth/link/{token}")).status_code == 303

            async def get(case: str) -> Any:
                path, params, cold = cases[case]
                if cold:
                    console.cache.forget()
                r = await client.get(path, params=params, headers={"HX-Request": "true"})
                assert r.status_code == 200, r.text[:300]
                return r

            names = list(cases)
            for case in names:
                await get(case)  # warm-up
            for r in range(args.runs):
                for case in names[r % len(names):] + names[:r % len(names)]:
                    if case.endswith("cached"):
                        await get(case.replace("cached", "cold"))  # fill this window's entry
                    t0 = time.perf_counter()
                    await get(case)
                    times[case].append((time.perf_counter() - t0) * 1000)
        await engine.dispose()
    print(f"\n/scenarios, {scenario:,} scenario events among {total:,}, {args.runs} runs (ms)")
    print(f"{'request':<20} {'median':>8} {'p95':>8}")
    for case, ts in times.items():
        ts = sorted(ts)
        print(f"{case:<20} {statistics.median(ts):8.1f} {ts[int(0.95 * (len(ts) - 1))]:8.1f}")
    print(_load())


if __name__ == "__main__":
    asyncio.run(main())
