"""Token buckets in Redis: one budget for every process of a bot (``RELOVE_REDIS_URL``).

Each take is one Lua script run atomically by Redis on the server's own clock (``TIME``), so
processes on different hosts agree without synchronised clocks: it checks the pause, refills
every bucket of the message, and takes a token from all of them or none (answering how long to
wait). Buckets expire once they would be full again, so memory stays flat for any audience.

A 429 sets the pause key (never shortening a longer pause) and publishes the pause on a channel;
every process mirrors it locally, so the check right before each call
(:meth:`RedisRateLimitStorage.paused_for`) costs no round trip. The scripts check the key itself,
so no new slot is granted during a pause even before the message arrives.

When Redis cannot be reached, the storage falls back to in-process buckets (logged) and tries
Redis again a few seconds later: the bot keeps answering, each process pacing itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relove.redis_client import open_redis
from relove.telegram.ratelimit.base import Bucket, RateLimitStorage
from relove.telegram.ratelimit.memory import MemoryRateLimitStorage

log = logging.getLogger(__name__)

#: after a Redis error, buckets are kept in this process for this long before Redis is retried
FALLBACK_S = 5.0

# KEYS: pause key, then one key per bucket; ARGV: rate, capacity, need per bucket.
# Returns {1, 0} when every bucket gave a token, {0, ms to wait} when one is short,
# {-1, ms left} while paused.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then
  return {-1, paused - now}
end
local levels = {}
local wait = 0
for i = 2, #KEYS do
  local j = (i - 2) * 3
  local rate, cap, need = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])
  local level = cap
  local state = redis.call('HMGET', KEYS[i], 't', 's')
  if state[1] then
    level = math.min(cap, tonumber(state[1]) + (now - tonumber(state[2])) * rate / 1000)
  end
  levels[i] = level
  if level < need then
    wait = math.max(wait, (need - level) * 1000 / rate)
  end
end
if wait > 0 then
  return {0, math.ceil(wait)}
end
for i = 2, #KEYS do
  local j = (i - 2) * 3
  local rate, cap = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  redis.call('HSET', KEYS[i], 't', tostring(levels[i] - 1), 's', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap * 1000 / rate) + 1000)
end
return {1, 0}
"""

# KEYS: pause key, channel; ARGV: ms. Extends the pause and tells everyone; returns ms left.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + ms > current then
  redis.call('SET', KEYS[1], now + ms, 'PX', ms + 1000)
  redis.call('PUBLISH', KEYS[2], ms)
  return ms
end
return current - now
"""

# KEYS: pause key; returns ms left (0: not paused).
_PAUSED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
return math.max(0, paused - now)
"""


class RedisRateLimitStorage(RateLimitStorage):
    """Buckets under ``prefix`` in Redis (``prefix`` names one bot: its limits are its own)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        # one hash slot for all of a bot's keys, so a script may touch them in a cluster too
        self._base = f"{{{prefix}}}"
        self._pause_key = f"{self._base}:pause"
        self._channel = f"{self._base}:paused"
        self._take = redis.register_script(_TAKE)
        self._pause = redis.register_script(_PAUSE)
        self._paused = redis.register_script(_PAUSED)
        self._paused_until = 0.0  # this process's mirror of the pause (monotonic clock)
        self._listener: asyncio.Task[None] | None = None
        self._fallback = MemoryRateLimitStorage()
        self._fallback_until = 0.0

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisRateLimitStorage:
        return cls(open_redis(url), prefix)

    # --- the pause mirror --------------------------------------------------------------------
    def _note_pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _listen_once_started(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        """Mirror pauses set by any process; on a lost connection, resubscribe (and read the
        pause key, in case one was set meanwhile)."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._note_pause(float(await self._paused(keys=[self._pause_key])) / 1000)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._note_pause(float(message["data"]) / 1000)
            except (RedisError, OSError) as e:
                log.warning("rate limits: the pause channel failed (%s); resubscribing", e)
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()

    # --- the storage -------------------------------------------------------------------------
    def _use_fallback(self, error: Exception) -> None:
        if time.monotonic() >= self._fallback_until:
            log.warning("rate limits: Redis unavailable (%s); pacing in this process for %ss",
                        error, FALLBACK_S)
        self._fallback_until = time.monotonic() + FALLBACK_S

    async def take(self, buckets: Sequence[Bucket]) -> float:
        self._listen_once_started()
        if time.monotonic() < self._fallback_until:
            return await self._fallback.take(buckets)
        keys = [self._pause_key, *(f"{self._base}:b:{b.key}" for b in buckets)]
        args: list[Any] = []
        for b in buckets:
            args += [repr(b.rate), repr(b.capacity), repr(b.need)]
        try:
            state, ms = await self._take(keys=keys, args=args)
        except (RedisError, OSError) as e:
            self._use_fallback(e)
            return await self._fallback.take(buckets)
        if state == -1:
            self._note_pause(ms / 1000)
        return 0.0 if state == 1 else ms / 1000

    async def pause(self, seconds: float) -> None:
        self._listen_once_started()
        self._note_pause(seconds)
        await self._fallback.pause(seconds)
        try:
            await self._pause(keys=[self._pause_key, self._channel],
                              args=[max(1, round(seconds * 1000))])
        except (RedisError, OSError) as e:
            self._use_fallback(e)

    def paused_for(self) -> float:
        self._listen_once_started()
        return max(0.0, self._paused_until - time.monotonic(), self._fallback.paused_for())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self.redis.aclose()
