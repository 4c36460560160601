"""What the hardening of issue 9 costs and saves: template bombs before/after, the regex engines
compared, and the filter limits (1,000-value `in`, 1,100-term OR chain, the comparison budget)
end to end on SQLite and PostgreSQL.

    .venv/bin/python bench/limits.py [--runs 7]

PostgreSQL: RELOVE_BENCH_DATABASE_URL (a scratch database is created and dropped there).
Prints medians and the load average; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import regex

from relove.db.engine import create_engine, create_session_factory
from relove.db.migrate import upgrade
from relove.db.models import User
from relove.segments import count_users
from relove.segments.lower import MAX_TERMS
from relove.templating import Template

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_postgres  # noqa: E402

BOMBS = ["{{ 'a' * 10**8 }}", "{% for i in range(99999) %}{% for j in range(999) %}{% endfor %}"
         "{% endfor %}"]  # fmt: skip
_BOMB_SCRIPT = """
import resource, sys, time
from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment
from relove.templating import Template
which, text = sys.argv[1], sys.argv[2]
t = time.perf_counter()
try:
    if which == "before":
        env = SandboxedEnvironment(autoescape=True, undefined=ChainableUndefined)
        out = "rendered %d chars" % len(env.from_string(text).render({}))
    else:
        Template(text, names={}).render({})
        out = "rendered"
except Exception as e:
    out = type(e).__name__
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("%.3f s, peak RSS %.0f MB, %s" % (time.perf_counter() - t, rss, out))
"""


def median_us(f: Callable[[], object], n: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(n):
            f()
        times.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(times)


def templates(runs: int) -> None:
    print("## templates")
    for text in BOMBS:
        for which in ("before", "after"):
            try:
                out = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, which, text],
                                     capture_output=True, text=True, timeout=60).stdout.strip()
            except subprocess.TimeoutExpired:
                out = "killed after 60 s"
            print(f"  {which:6} {text[:40]:40} {out}")
    from jinja2 import ChainableUndefined
    from jinja2.sandbox import SandboxedEnvironment

    text = ("Привет, <b>{{ user.first_name }}</b>! {{ markers.city | default('') }} "
            "{% if markers.vip %}VIP{% endif %}")  # fmt: skip
    data = {"user": {"first_name": "Анна"}, "markers": {"city": "Москва", "vip": True},
            "context": {}}  # fmt: skip
    old = SandboxedEnvironment(autoescape=True, undefined=ChainableUndefined).from_string(text)
    new = Template(text, names={"user": (), "markers": (), "context": ()})

    async def inline() -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            for _ in range(2000):
                await new.arender(data)
            times.append((time.perf_counter() - t) / 2000 * 1e6)
        return statistics.median(times)

    async def threaded() -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            for _ in range(500):
                await asyncio.to_thread(new.render, data)
            times.append((time.perf_counter() - t) / 500 * 1e6)
        return statistics.median(times)

    print(f"  one render: before {median_us(lambda: old.render(data), 2000, runs):.0f} µs, "
          f"after {median_us(lambda: new.render(data), 2000, runs):.0f} µs, arender inline "
          f"{asyncio.run(inline()):.0f} µs, through a thread {asyncio.run(threaded()):.0f} µs")


def regexes(runs: int) -> None:
    print("## regular expressions (one search, µs)")
    try:
        import re2  # type: ignore[import-not-found]
    except ImportError:
        re2 = None
    value = "ivan_petrov_1987_moscow"
    for pattern in ["^iv", "a|я", "z.*1", r"\d{4}", "petrov.*moscow$"]:
        r1 = re.compile(pattern, re.I | re.S)
        r2 = regex.compile(pattern, regex.I | regex.S | regex.V0)
        line = (f"  {pattern:18} re {median_us(lambda r=r1: r.search(value), 5000, runs):.2f}  "
                f"regex {median_us(lambda r=r2: r.search(value, timeout=0.2), 5000, runs):.2f}")
        if re2 is not None:
            options = re2.Options()
            options.case_sensitive = False
            options.dot_nl = True
            r3 = re2.compile(pattern, options)
            line += f"  re2 {median_us(lambda r=r3: r.search(value), 5000, runs):.2f}"
        print(line)
    bomb = regex.compile("(a|aa)+$", regex.I | regex.S)
    t = time.perf_counter()
    try:
        bomb.search("a" * 63 + "!", timeout=0.2)
    except TimeoutError:
        pass
    print(f"  (a|aa)+$ on 64 characters: regex stops after {time.perf_counter() - t:.2f} s "
          "(timeout 0.2 s); re never finishes")


async def filters(url: str, runs: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    sessions = create_session_factory(engine)
    async with sessions.begin() as s:
        s.add_all(User(id=i, username=f"u{i}", markers={"a": i % 50, "tags": [f"t{i % 7}"]})
                  for i in range(1, 2001))  # fmt: skip
    cases = {
        "in, 1,000 values": "a in (" + ", ".join(str(i) for i in range(1000)) + ")",
        "OR chain, 1,100 terms": "||".join(f"a={i}" for i in range(1100)),
        f"budget, {MAX_TERMS:,} comparisons": {"or": [
            {"field": "markers.tags", "op": "contains", "value": f"t{i}"}
            for i in range(MAX_TERMS)]},
    }  # fmt: skip
    for name, flt in cases.items():
        times = []
        for _ in range(runs):
            async with sessions() as s:
                t = time.perf_counter()
                count = await count_users(s, flt)
                times.append(time.perf_counter() - t)
        print(f"  {engine.dialect.name:10} {name:28} {statistics.median(times) * 1000:7.1f} ms "
              f"({count} of 2,000 users)")
    await engine.dispose()


async def all_filters(runs: int) -> None:
    print("## filters end to end (parse, compile, count; median)")
    with tempfile.TemporaryDirectory() as tmp:
        await filters(f"sqlite+aiosqlite:///{tmp}/limits.db", runs)
    async with scratch_postgres("relove_bench_limits") as url:
        await filters(url, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}")
    templates(args.runs)
    regexes(args.runs)
    asyncio.run(all_filters(args.runs))


if __name__ == "__main__":
    main()
