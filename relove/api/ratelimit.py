"""Per-token rate limits: a token bucket per API token.

``MemoryRateLimiter`` keeps the buckets in the process (one ``relove serve`` worker);
``RedisRateLimiter`` keeps them in Redis, updated atomically by a Lua script on Redis's clock,
so every worker and host shares one bucket per token. ``acquire`` answers 0 when the request
may go, else how many seconds until it may.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: float, burst: int) -> float:
        """Take one request from ``key``'s bucket: 0.0 if allowed, else the seconds to wait."""
        ...

    async def close(self) -> None: ...


def retry_after_seconds(wait: float) -> int:
    """The ``Retry-After`` header's whole seconds for a wait (at least 1)."""
    return max(1, math.ceil(wait))


class MemoryRateLimiter:
    """Buckets in this process; ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, key: str, rate: float, burst: int) -> float:
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + max(0.0, now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate

    async def close(self) -> None:
        self._buckets.clear()


#: KEYS[1] bucket; ARGV rate, burst. Returns the wait in seconds as text ("0" = allowed).
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class RedisRateLimiter:
    """Buckets in Redis under ``{prefix}{key}``, shared by every process using that Redis.

    If Redis cannot be reached the request is let through and the failure logged: the limit
    protects the service, an outage of it should not take the API down too."""

    def __init__(self, redis: Redis, *, prefix: str = "relove:api:rate:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "relove:api:rate:") -> RedisRateLimiter:
        from relove.redis_client import open_redis

        return cls(open_redis(url), prefix=prefix)

    async def acquire(self, key: str, rate: float, burst: int) -> float:
        from redis.exceptions import RedisError

        try:
            wait = await self._script(keys=[self._prefix + key], args=[rate, burst])
        except (RedisError, OSError) as e:
            log.warning("rate limit not checked, Redis failed: %s", e)
            return 0.0
        return float(wait)

    async def close(self) -> None:
        await self._redis.aclose()
