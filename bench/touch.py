"""Touch throughput: updates/s through the real aiogram Dispatcher.

Runs in one process, on the same updates (each variant starts from empty tables):
  bare        — aiogram's way: a task per update into a Dispatcher with an empty handler
                (the ceiling);
  touch       — relove's pipeline as `relove run` polls: each page touched in ONE batch
                (upsert + its events in one statement), then per-user lanes into the same
                Dispatcher (relove.bot.ingest);
  touch-noev  — the same with events off (the cost of recording events: ≤ 0.05 of the ratio);
  middleware  — the per-update path (aiogram's feed, the touch middleware awaits each touch;
                what a webhook or a test feeding `dp.feed_update` gets);
  note        — with --note: the architecture note's get-modify-commit code.
Prints updates/s (best of the interleaved repeats) and the ratios to bare (target ≥ 0.80 on a
quiet machine, ≥ 0.70 under load), with the load average.

    .venv/bin/python bench/touch.py [--updates 20000] [--users 5000] [--repeats 3] [--sqlite]
                                    [--note] [--in-place]

PostgreSQL from RELOVE_BENCH_DATABASE_URL (default: the local `test` server): a scratch database
is created and dropped, or with --in-place the URL's own database is used (its users, events
and messages tables are emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiogram import BaseMiddleware, Bot, Dispatcher, Router  # noqa: E402
from aiogram.types import Message, TelegramObject, Update  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bench._common import scratch_postgres, server_url  # noqa: E402
from relove.bot.ingest import Ingest  # noqa: E402
from relove.bot.middlewares import TouchMiddleware  # noqa: E402
from relove.db.engine import create_engine, create_session_factory  # noqa: E402
from relove.db.migrate import upgrade  # noqa: E402
from relove.db.models import User  # noqa: E402
from relove.runtime import tune_gc  # noqa: E402
from relove.users.touch import TouchWriter  # noqa: E402
from tests.bot.fake_telegram import FakeTelegramSession, message_update, tg_user  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001

PAGE = 100  # one getUpdates page
# start_polling(tasks_concurrency_limit=…)
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "1000"))


async def _empty(message: Message) -> None:
    return None


def _dispatcher(*outer: BaseMiddleware) -> Dispatcher:
    dp = Dispatcher()
    router = Router()
    router.message.register(_empty)
    dp.include_router(router)
    for middleware in outer:
        dp.update.outer_middleware(middleware)
    return dp


class NoteMiddleware(BaseMiddleware):
    """The architecture note's section 4, run for every update."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = create_session_factory(engine)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message  # type: ignore[attr-defined]
        async with self.sessions() as session:
            user = await session.get(User, message.from_user.id)
            if not user:
                user = User(id=message.from_user.id, first_name=message.from_user.first_name)
                session.add(user)
            user.context = user.context or {}
            user.context["last_message"] = message.text
            try:
                await session.commit()
            except Exception:  # the note's race: duplicate keys on concurrent first touches
                await session.rollback()
                data["note_errors"] = data.get("note_errors", 0) + 1
                NoteMiddleware.errors += 1
        return await handler(event, data)

    errors = 0


async def _feed(dp: Dispatcher, bot: Bot, updates: list[str]) -> float:
    """Feed updates the way aiogram's polling does: page by page, one task per update, without
    waiting for handlers before taking the next page (bounded in-flight tasks)."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(update: str) -> None:
        try:
            await dp.feed_raw_update(bot, json.loads(update))
        finally:
            slots.release()

    tasks: set[asyncio.Task[None]] = set()  # like the polling loop: done tasks are dropped
    start = time.perf_counter()
    for i in range(0, len(updates), PAGE):
        for update in updates[i : i + PAGE]:
            await slots.acquire()
            task = asyncio.create_task(one(update))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0)  # the next getUpdates call
    await asyncio.gather(*tasks)
    return len(updates) / (time.perf_counter() - start)


def _updates(n: int, users: int, seed: int) -> list[str]:
    """Raw updates as the JSON text getUpdates returns (parsed when fed, as polling does; a
    pre-parsed list of 20,000 nested dicts would only make the garbage collector's work
    grow with the benchmark's own data)."""
    rnd = random.Random(seed)
    people = [tg_user(1_000_000 + i, f"User{i}", username=f"user{i}") for i in range(users)]
    return [json.dumps(message_update(rnd.choice(people), f"message {k}")) for k in range(n)]


async def _feed_pipeline(ingest: Ingest, bot: Bot, updates: list[str]) -> float:
    """Feed updates as `relove run` polls them: page by page into the pipeline, which holds at
    most IN_FLIGHT updates (the same bound as the other variants)."""
    start = time.perf_counter()
    for i in range(0, len(updates), PAGE):
        page = [Update.model_validate(json.loads(u), context={"bot": bot})
                for u in updates[i : i + PAGE]]  # fmt: skip
        await ingest.put_page(page)
        await asyncio.sleep(0)  # the next getUpdates call
    await ingest.drain()
    return len(updates) / (time.perf_counter() - start)


async def _reset(engine: AsyncEngine) -> None:
    """Empty tables for every run (TRUNCATE on PostgreSQL: no dead tuples or index bloat left
    by the previous variant)."""
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for table in ("users", "events", "messages"):
                await conn.execute(text(f"DELETE FROM {table}"))
        else:
            await conn.execute(text("TRUNCATE users, events, messages CASCADE"))


Feed = Callable[[list[str]], Awaitable[float]]


async def run(url: str, n: int, users: int, label: str, repeats: int, note: bool) -> None:
    engine = create_engine(url, pool_timeout=600)
    await upgrade(engine)
    bot = Bot("42:BENCH", session=FakeTelegramSession())
    pipelines = []

    def pipeline(events: bool) -> Feed:
        writer = TouchWriter(engine, events=events)
        ingest = Ingest(_dispatcher(TouchMiddleware(writer)), bot, writer, max_pending=IN_FLIGHT)
        pipelines.append(ingest)
        return functools.partial(_feed_pipeline, ingest, bot)

    def aiogram_feed(*outer: BaseMiddleware) -> Feed:
        return functools.partial(_feed, _dispatcher(*outer), bot)

    variants: dict[str, Feed] = {
        "bare": aiogram_feed(),
        "touch": pipeline(events=True),
        "touch-noev": pipeline(events=False),
        "middleware": aiogram_feed(TouchMiddleware(TouchWriter(engine))),
    }
    if note:
        variants["note"] = aiogram_feed(NoteMiddleware(engine))
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}  # this process's CPU µs per update (the database's not included)
    try:
        for feed in variants.values():  # warm up caches, pools, prepared statements
            await feed(_updates(2000, 200, seed=1))
        # Interleaved repeats, best of each: the machine's noise hits every variant alike.
        for _ in range(repeats):
            for name, feed in variants.items():
                await _reset(engine)
                updates = _updates(n, users, seed=2)
                gc.collect()  # every variant starts without the previous one's garbage
                started = time.process_time()
                rate = await feed(updates)
                used = (time.process_time() - started) / n * 1e6
                best[name] = max(best.get(name, 0.0), rate)
                cpu[name] = min(cpu.get(name, used), used)
    finally:
        for ingest in pipelines:
            await ingest.close()
        await engine.dispose()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{label}: {n} updates, {users} users, pages of {PAGE}, <= {IN_FLIGHT} in flight, "
          f"best of {repeats}; load average {load} ({os.cpu_count()} CPUs)")
    bare = best["bare"]
    for name, rate in best.items():
        print(f"  {name:<12} {rate:8.0f} updates/s   ratio to bare {rate / bare:5.2f}   "
              f"CPU {cpu[name]:6.1f} µs/update (bare's / this {cpu['bare'] / cpu[name]:4.2f})")
    print(f"  touch / bare (target >= 0.80 quiet, >= 0.70 loaded): {best['touch'] / bare:.2f}; "
          f"events cost {(best['touch-noev'] - best['touch']) / bare:+.2f} of the ratio "
          f"(target <= 0.05)")
    if note:
        print(f"  note's code: {NoteMiddleware.errors} updates failed with errors")


async def main() -> None:
    # The garbage-collector settings `relove run` uses, for all variants alike.
    tune_gc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true", help="also run on SQLite")
    parser.add_argument("--note", action="store_true", help="also run the note's code (slow)")
    parser.add_argument("--in-place", action="store_true",
                        help="use RELOVE_BENCH_DATABASE_URL's database itself")
    args = parser.parse_args()
    if args.in_place:
        await run(server_url(), args.updates, args.users, "PostgreSQL", args.repeats, args.note)
    else:
        async with scratch_postgres() as url:
            await run(url, args.updates, args.users, "PostgreSQL", args.repeats, args.note)
    if args.sqlite:
        NoteMiddleware.errors = 0
        with tempfile.TemporaryDirectory() as tmp:
            await run(f"sqlite+aiosqlite:///{tmp}/bench.db", args.updates, args.users, "SQLite",
                      args.repeats, args.note)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
