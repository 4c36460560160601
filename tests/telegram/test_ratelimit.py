"""The bot's rate limiter, on every storage (in-process; Redis when configured): two limiters —
two processes of one bot — share one budget, a 429 pauses both, replies go before bulk.

Rates here are tiny (a token per 100 s), so "cannot get a slot" holds however slow the machine:
a refused acquire is checked with a short timeout that no refill could beat."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

from relove.bot.factory import create_bot
from relove.config import Settings
from relove.telegram.ratelimit import (
    Limits,
    MemoryRateLimitStorage,
    Priority,
    RateLimiter,
    RateLimitStorage,
    build_limiter,
    counts_as_message,
)
from relove.telegram.ratelimit.base import MAX_POLLERS
from relove.telegram.ratelimit.middleware import limiter_of
from relove.telegram.ratelimit.redis import RedisRateLimitStorage
from tests.bot.fake_telegram import FakeTelegramSession
from tests.sandbox_fixtures import eventually
from tests.telegram.conftest import StorageFactory

SLOW = 0.01  # tokens per second: nothing refills during a test


async def refused(acquire: Any) -> bool:
    """True when ``acquire`` (a coroutine) does not get its slot within a short wait."""
    try:
        await asyncio.wait_for(acquire, 0.3)
    except TimeoutError:
        return True
    return False


async def test_two_processes_share_the_global_budget(shared_storage: StorageFactory) -> None:
    limits = Limits(rate=SLOW, reply_reserve=0)  # a bucket of one message
    a = RateLimiter(shared_storage(), limits)
    b = RateLimiter(shared_storage(), limits)
    await a.acquire(None)
    assert await refused(b.acquire(None))
    assert await refused(a.acquire(None))


async def test_per_chat_and_per_group_budgets_are_shared(shared_storage: StorageFactory) -> None:
    limits = Limits(rate=1000, per_chat=SLOW, per_chat_burst=3, per_group_minute=60 * SLOW)
    a = RateLimiter(shared_storage(), limits)
    b = RateLimiter(shared_storage(), limits)
    await a.acquire(5)
    await a.acquire(5)
    await b.acquire(5)  # the burst of 3 for chat 5, taken by both
    assert await refused(a.acquire(5))
    assert await refused(b.acquire(5))
    await b.acquire(6)  # another chat has its own budget
    # a group: its own budget of one message here (20/min in production) on top of the chat's
    await a.acquire(-100)
    assert await refused(b.acquire(-100))
    await asyncio.wait_for(b.acquire("@channel"), 60)  # a channel by username: its own


async def test_a_429_pauses_every_process(shared_storage: StorageFactory) -> None:
    a = RateLimiter(shared_storage(), Limits())
    b = RateLimiter(shared_storage(), Limits())
    await b.acquire(1)
    await a.pause(30)
    # b learns of the pause without asking (the check before each call costs nothing) …
    await eventually(lambda: _paused(b), timeout=30)
    assert await refused(b.wait_pause())
    # … and no slot is given during it, not even to a process started after the 429
    assert await refused(b.acquire(2))
    c = RateLimiter(shared_storage(), Limits())
    assert await refused(c.acquire(3, priority=Priority.bulk))
    await b.pause(1)  # a shorter pause never shortens the longer one
    assert b.storage.paused_for() > 20


async def _paused(limiter: RateLimiter) -> bool:
    return limiter.storage.paused_for() > 20


async def test_replies_find_a_reserve_that_bulk_cannot_take(
    shared_storage: StorageFactory,
) -> None:
    limits = Limits(rate=SLOW, reply_reserve=2)  # a bucket of 1 + 2 reserved for replies
    worker = RateLimiter(shared_storage(), limits)
    bot = RateLimiter(shared_storage(), limits)
    await worker.acquire(None, priority=Priority.bulk)
    assert await refused(worker.acquire(None, priority=Priority.bulk))
    await bot.acquire(7)  # replies still find two slots in another process
    await bot.acquire(8)
    assert await refused(bot.acquire(9))


async def test_a_waiting_reply_goes_before_a_waiting_broadcast(
    shared_storage: StorageFactory,
) -> None:
    """Both wait for an empty bucket: the reply gets the first token, the broadcast waits until
    the reserve has refilled too (here after 0.5 s vs 2 s)."""
    limits = Limits(rate=2.0, reply_reserve=2)
    worker = RateLimiter(shared_storage(), limits)
    bot = RateLimiter(shared_storage(), limits)
    for chat in (1, 2, 3):
        await bot.acquire(chat)  # empty the bucket
    order: list[str] = []

    async def take(limiter: RateLimiter, priority: Priority, name: str) -> None:
        await limiter.acquire(None, priority=priority)
        order.append(name)

    bulk = asyncio.create_task(take(worker, Priority.bulk, "broadcast"))
    await asyncio.sleep(0)  # the broadcast starts waiting first
    await asyncio.wait_for(take(bot, Priority.reply, "reply"), 60)
    await asyncio.wait_for(bulk, 60)
    assert order == ["reply", "broadcast"]


async def test_paid_broadcasts_have_their_own_budget(shared_storage: StorageFactory) -> None:
    limits = Limits(rate=SLOW, paid_rate=SLOW, reply_reserve=0)
    a = RateLimiter(shared_storage(), limits)
    await a.acquire(None, priority=Priority.bulk)
    await a.acquire(None, priority=Priority.bulk, paid=True)  # not the free budget
    assert await refused(a.acquire(None, priority=Priority.bulk, paid=True))


def test_which_methods_count_as_messages() -> None:
    assert counts_as_message("sendMessage") and counts_as_message("copyMessage")
    assert counts_as_message("forwardMessage") and counts_as_message("sendPhoto")
    assert not counts_as_message("sendChatAction") and not counts_as_message("getMe")
    assert not counts_as_message("answerCallbackQuery")


# --- the aiogram middleware ---------------------------------------------------------------------
def _settings(**values: Any) -> Settings:
    return Settings(bot_token="42:TEST", _env_file=None, **values)  # type: ignore[call-arg]


async def test_a_429_to_the_bot_pauses_every_process(shared_storage: StorageFactory) -> None:
    telegram = FakeTelegramSession()
    limiter = RateLimiter(shared_storage(), Limits())
    worker = RateLimiter(shared_storage(), Limits())
    bot: Bot = create_bot(_settings(), session=telegram, limiter=limiter)
    assert limiter_of(bot) is limiter
    telegram.answer_next(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 60},
                               "description": "Too Many Requests: retry after 60"})
    send = asyncio.create_task(bot.send_message(5, "Привет"))
    try:
        await eventually(lambda: _paused(worker), timeout=30)
        assert await refused(worker.acquire(6, priority=Priority.bulk))
        assert len(telegram.requests) == 1  # the retry waits for the pause too
    finally:
        send.cancel()
        await asyncio.gather(send, return_exceptions=True)


async def test_the_bot_retries_after_a_429() -> None:
    telegram = FakeTelegramSession()
    bot = create_bot(_settings(), session=telegram,
                     limiter=RateLimiter(MemoryRateLimitStorage(), Limits()))
    telegram.answer_next(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                               "description": "Too Many Requests: retry after 1"})
    sent = await asyncio.wait_for(bot.send_message(5, "Привет"), 60)
    assert sent.text == "Привет"
    assert [type(r).__name__ for r in telegram.requests] == ["SendMessage", "SendMessage"]
    await bot.send_chat_action(5, "typing")  # not a message: never paced


async def test_the_bot_gives_up_after_three_429s() -> None:
    telegram = FakeTelegramSession()
    limiter = RateLimiter(MemoryRateLimitStorage(), Limits())
    bot = create_bot(_settings(), session=telegram, limiter=limiter)
    for _ in range(3):
        telegram.answer_next(429, {"ok": False, "error_code": 429,
                                   "parameters": {"retry_after": 1},
                                   "description": "Too Many Requests: retry after 1"})
    with pytest.raises(TelegramRetryAfter):
        await asyncio.wait_for(bot.send_message(5, "x"), 60)
    assert len(telegram.requests) == 3


# --- choosing and losing the storage ----------------------------------------------------------
def test_the_storage_follows_the_settings() -> None:
    assert isinstance(build_limiter(_settings()).storage, MemoryRateLimitStorage)
    shared = build_limiter(_settings(redis_url="redis://127.0.0.1:6379/0"))
    assert isinstance(shared.storage, RedisRateLimitStorage)
    limits = build_limiter(_settings(telegram_rate_limit=20, telegram_reply_reserve=5)).limits
    assert (limits.rate, limits.reply_reserve, limits.per_chat_burst) == (20, 5, 3)


async def test_without_redis_each_process_paces_itself(caplog: pytest.LogCaptureFixture) -> None:
    """Redis unreachable: the bot keeps answering, paced in its own process (and says so)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    storage = RedisRateLimitStorage.from_url(f"redis://127.0.0.1:{port}/0", "relove-test:down")
    limiter = RateLimiter(storage, Limits(rate=SLOW, reply_reserve=0))
    try:
        await asyncio.wait_for(limiter.acquire(1), 60)
        assert await refused(limiter.acquire(2))  # still paced: the process's own budget
        await limiter.pause(5)
        assert limiter.storage.paused_for() > 0
    finally:
        await limiter.close()
    assert "Redis unavailable" in caplog.text



async def test_memory_stays_flat_for_any_audience() -> None:
    """A bucket per chat is forgotten once it is full again (the same as no bucket)."""
    now = [0.0]
    storage = MemoryRateLimitStorage(clock=lambda: now[0])
    limiter = RateLimiter(storage, Limits(rate=1e9, per_chat=1, per_chat_burst=3))
    for chat in range(10_000):
        await limiter.acquire(chat)
        now[0] += 0.001  # 1000 messages/s: a chat's bucket is full 1 s after its message
    assert len(storage._buckets) < 3_500


class _Polled(RateLimitStorage):
    """A storage that remembers which tasks asked it for tokens (the callers a Redis would
    see), around the real one."""

    def __init__(self, inner: RateLimitStorage) -> None:
        self.inner = inner
        self.callers: set[int] = set()

    async def take(self, buckets: Any) -> float:
        self.callers.add(id(asyncio.current_task()))
        return await self.inner.take(buckets)

    async def pause(self, seconds: float) -> None:
        await self.inner.pause(seconds)

    def paused_for(self) -> float:
        return self.inner.paused_for()

    async def close(self) -> None:
        await self.inner.close()


async def test_waiting_messages_queue_in_the_process_not_at_the_storage(
    shared_storage: StorageFactory,
) -> None:
    """Thousands of replies waiting for a slot must not all poll Redis (they emptied its
    connection pool): at most MAX_POLLERS of a process ask the storage, the rest wait their
    turn in the process — and every one is served."""
    storage = _Polled(shared_storage())
    limiter = RateLimiter(storage, Limits(rate=SLOW, reply_reserve=0))
    await limiter.acquire(None)  # the only token: every other waits
    waiting = [asyncio.create_task(limiter.acquire(None)) for _ in range(300)]
    await asyncio.sleep(0.3)
    assert 0 < len(storage.callers) <= MAX_POLLERS + 1
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)

    # (a fresh budget: the shared one keeps the slow bucket's state)
    fast = RateLimiter(MemoryRateLimitStorage(), Limits(rate=1000, reply_reserve=0))
    await asyncio.wait_for(asyncio.gather(*(fast.acquire(None) for _ in range(300))), 60)
