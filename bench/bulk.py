"""Bulk import and export: a million users in and out, through the real `relove` command.

Steps (each one a `relove users …` process; wall time, peak RSS of that process, rows/s):
  1. import N users with 5 markers into an empty PostgreSQL database;
  2. re-import the same file (must change 0 rows: checked with max(updated_at));
  3. export them all (CSV);
  4. (--sqlite) import the same file into an empty SQLite database.
The load average is printed with every figure (the machine is shared).

    .venv/bin/python bench/bulk.py [--users 1000000] [--sqlite] [--keep FILE]

PostgreSQL from RELOVE_BENCH_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/bench_bulk):
that database is migrated and its users and events are emptied first.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402

from bench._common import server_url  # noqa: E402
from relove.db.engine import create_engine  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001

HEADER = (
    "id,username,first_name,last_name,gender,is_active,"
    "markers.city,markers.score,markers.vip,markers.tags[],markers.source\n"
)
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Tbilisi"]
NAMES = ["Анна", "Мария", "Иван", "Пётр", "Ольга", "Alex", "Sam", "Елена"]
TAGS = ["yoga", "music", "travel", "books", "art", "food"]
SOURCES = ["instagram", "telegram", "friend", "event", "ads"]


def generate(path: Path, users: int, seed: int = 1) -> None:
    """A CSV of ``users`` users with 5 markers each (≈ 100 bytes a row)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        lines = []
        for i in range(1, users + 1):
            uid = 100_000_000 + i * 7
            tags = "|".join(rng.sample(TAGS, rng.randint(1, 3)))
            lines.append(
                f"{uid},user{i},{rng.choice(NAMES)},Фамилия{i % 1000},"
                f"{rng.choice(('male', 'female', 'unknown'))},{'true' if i % 17 else 'false'},"
                f"{rng.choice(CITIES)},{rng.randint(0, 1000)},{'true' if i % 5 == 0 else 'false'},"
                f"{tags},{rng.choice(SOURCES)}\n"
            )
            if len(lines) == 10_000:
                f.writelines(lines)
                lines.clear()
        f.writelines(lines)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def relove(args: list[str], database_url: str) -> tuple[float, float, str]:
    """Run `relove …`; (seconds, peak RSS in MB of that process, stdout)."""
    env = dict(os.environ, RELOVE_DATABASE_URL=database_url, RELOVE_LOG_LEVEL="WARNING")
    exe = Path(sys.executable).with_name("relove")
    started = time.perf_counter()
    proc = subprocess.Popen([str(exe), *args], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"relove {' '.join(args)} failed ({proc.returncode}):\n{out}")
    return seconds, usage.ru_maxrss / 1024, out


async def reset(url: str) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE users, events CASCADE"))
        else:
            await conn.execute(text("DELETE FROM users"))
            await conn.execute(text("DELETE FROM events"))
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("VACUUM ANALYZE users"))
    await engine.dispose()


async def state(url: str) -> tuple[int, str]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT count(*), max(updated_at) FROM users"))).one()
    await engine.dispose()
    return int(row[0]), str(row[1])


def report(step: str, users: int, seconds: float, rss: float, before: str) -> None:
    print(
        f"{step:<28} {seconds:8.1f} s  {users / seconds:>9,.0f} rows/s  "
        f"peak RSS {rss:6.0f} MB  load {before} → {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="also import into SQLite")
    parser.add_argument("--keep", type=Path, help="keep the generated CSV here")
    args = parser.parse_args()
    pg = server_url()
    with tempfile.TemporaryDirectory(prefix="relove-bulk-") as tmp:
        csv_path = args.keep or Path(tmp) / "users.csv"
        if not csv_path.exists():
            started = time.perf_counter()
            generate(csv_path, args.users)
            print(f"generated {args.users:,} users in {time.perf_counter() - started:.1f} s "
                  f"({csv_path.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
        asyncio.run(reset(pg))
        print(f"PostgreSQL: {pg.split('@')[-1]}")

        before = load()
        seconds, rss, out = relove(["users", "import", str(csv_path), "--json"], pg)
        report("import (empty table)", args.users, seconds, rss, before)
        count, stamp = asyncio.run(state(pg))
        assert count == args.users, (count, out)

        before = load()
        seconds, rss, out = relove(["users", "import", str(csv_path), "--json"], pg)
        report("re-import (same file)", args.users, seconds, rss, before)
        assert '"updated": 0' in out and '"created": 0' in out, out
        assert asyncio.run(state(pg)) == (count, stamp), "a re-import changed rows"
        print("  re-import changed 0 rows (max(updated_at) unchanged)")

        out_path = Path(tmp) / "export.csv"
        before = load()
        seconds, rss, _ = relove(["users", "export", "--output", str(out_path)], pg)
        report("export (CSV)", args.users, seconds, rss, before)

        if args.sqlite:
            db = Path(tmp) / "bench.db"
            url = f"sqlite+aiosqlite:///{db}"
            asyncio.run(reset(url))
            before = load()
            seconds, rss, out = relove(["users", "import", str(csv_path), "--json"], url)
            report("import SQLite (empty)", args.users, seconds, rss, before)
            assert asyncio.run(state(url))[0] == args.users


if __name__ == "__main__":
    main()
