"""Rate-limit storages to test every limiter behaviour on: in this process always, and in the
real Redis when ``RELOVE_TEST_REDIS_URL`` (or ``RELOVE_REDIS_URL``) is set — each test under a
key prefix of its own, removed afterwards (never FLUSHDB)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from relove.telegram.ratelimit import MemoryRateLimitStorage, RateLimitStorage

REDIS_URL = os.environ.get("RELOVE_TEST_REDIS_URL") or os.environ.get("RELOVE_REDIS_URL")
STORAGES = ["memory"] + (["redis"] if REDIS_URL else [])
RUN = f"relove-test:{os.getpid()}:{secrets.token_hex(3)}"

#: A fresh storage sharing the test's budget: "another process" of the same bot.
StorageFactory = Callable[[], RateLimitStorage]


@pytest.fixture(params=STORAGES)
async def shared_storage(request: pytest.FixtureRequest) -> AsyncIterator[StorageFactory]:
    """Call it once per simulated process; every storage it returns shares one budget (memory:
    the same object, as inside one process; Redis: a connection of its own each)."""
    made: list[RateLimitStorage] = []
    prefix = f"{RUN}:{secrets.token_hex(4)}"
    if request.param == "memory":
        memory = MemoryRateLimitStorage()

        def make() -> RateLimitStorage:
            return memory
    else:
        from relove.telegram.ratelimit.redis import RedisRateLimitStorage

        assert REDIS_URL

        def make() -> RateLimitStorage:
            storage = RedisRateLimitStorage.from_url(REDIS_URL, prefix)
            made.append(storage)
            return storage

    yield make
    if made:
        redis = made[0].redis  # type: ignore[attr-defined]
        keys = [k async for k in redis.scan_iter(match=f"{{{prefix}}}:*")]
        if keys:
            await redis.delete(*keys)
    for storage in made:
        await storage.close()
