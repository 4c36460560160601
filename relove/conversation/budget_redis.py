"""The LLM budget shared through Redis by every process of a bot (``RELOVE_REDIS_URL``).

Same rules as :class:`~relove.conversation.budget.LLMBudget`, one budget for all instances:

* **rate** — a sliding window per user: a sorted set of admitted calls' times (Redis ``TIME``,
  so the processes' clocks don't matter), trimmed and counted by the same Lua script that admits;
* **daily** — a counter per user and UTC day (kept two days);
* **concurrency** — a sorted set of slot tokens scored by their expiry: a call takes a slot
  while fewer than ``concurrency`` unexpired ones exist, and gives it back after; a process
  that dies holding one loses it after ``slot_ttl`` (longer than an LLM call may take). A call
  waits up to ``queue_timeout`` for a slot (polling with backoff), then is refused as ``busy``;
* **summary lock** — ``SET NX PX`` with a token, released by compare-and-delete.

Each check-and-admit is one Lua script, so two instances never both take the last call. If
Redis is unreachable the call is refused as ``busy`` (the user gets the polite "busy" reply; no
unmetered spending) and one warning is logged per outage.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from redis.exceptions import RedisError

from relove.conversation.budget import BaseLLMBudget, BudgetExceeded, Refusal
from relove.db.types import utcnow
from relove.redis_client import open_redis

log = logging.getLogger(__name__)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: rate window, day counter. ARGV: rate, period s, daily, member, admit (1) / check (0)
ADMIT = _NOW + """
local rate, period, daily = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rate > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
  if redis.call('ZCARD', KEYS[1]) >= rate then return 'rate' end
end
if daily > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= daily then return 'daily' end
if ARGV[5] == '1' then
  if rate > 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000) + 1000)
  end
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 172800)
end
return ''
"""

# KEYS: rate window, day counter. ARGV: member
REFUND = """
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 1
"""

# KEYS: slots. ARGV: limit, token, ttl s
TAKE_SLOT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
  return 1
end
return 0
"""

# KEYS: lock. ARGV: token
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: polling for a free slot: first and longest pause between tries (seconds)
SLOT_POLL = (0.02, 0.25)


class RedisLLMBudget(BaseLLMBudget):
    def __init__(
        self,
        redis: Any,
        prefix: str,
        *,
        rate: int = 6,
        rate_period: float = 60.0,
        daily: int = 200,
        concurrency: int = 8,
        queue_timeout: float = 10.0,
        slot_ttl: float = 120.0,
        today: Callable[[], date] = lambda: utcnow().date(),
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.rate, self.rate_period, self.daily = rate, rate_period, daily
        self.concurrency, self.queue_timeout, self.slot_ttl = concurrency, queue_timeout, slot_ttl
        self._today = today
        self._admit = redis.register_script(ADMIT)
        self._refund = redis.register_script(REFUND)
        self._take_slot = redis.register_script(TAKE_SLOT)
        self._unlock = redis.register_script(UNLOCK)
        self._down = False

    @classmethod
    def from_url(cls, url: str, prefix: str, **kwargs: Any) -> RedisLLMBudget:
        client = open_redis(url, socket_timeout=5)
        return cls(client, prefix, **kwargs)

    async def close(self) -> None:
        await self.redis.aclose()

    # --- keys ------------------------------------------------------------------------------
    def _keys(self, user_id: int) -> list[str]:
        return [f"{self.prefix}:rate:{user_id}",
                f"{self.prefix}:day:{user_id}:{self._today().isoformat()}"]  # fmt: skip

    def _redis_failed(self, error: RedisError) -> None:
        if not self._down:
            self._down = True
            log.warning("Redis unavailable for the LLM budget (%s): calls are refused as busy",
                        error)  # fmt: skip

    def _redis_ok(self) -> None:
        if self._down:
            self._down = False
            log.warning("Redis is back for the LLM budget")

    # --- the rules -------------------------------------------------------------------------
    async def _run_admit(self, user_id: int, member: str, admit: bool) -> Refusal | None:
        args = [self.rate, self.rate_period, self.daily, member, "1" if admit else "0"]
        answer = await self._admit(keys=self._keys(user_id), args=args)
        reason = answer.decode() if isinstance(answer, bytes) else str(answer or "")
        return Refusal(reason) if reason else None

    async def refusal(self, user_id: int) -> Refusal | None:
        try:
            found = await self._run_admit(user_id, "", admit=False)
        except RedisError as e:
            self._redis_failed(e)
            return Refusal.busy
        self._redis_ok()
        return found

    async def used_today(self, user_id: int) -> int:
        return int(await self.redis.get(self._keys(user_id)[1]) or 0)

    async def _slot(self) -> str | None:
        """A concurrency slot's token, or None after ``queue_timeout``."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.queue_timeout
        pause = SLOT_POLL[0]
        key = f"{self.prefix}:slots"
        while True:
            if await self._take_slot(keys=[key], args=[self.concurrency, token, self.slot_ttl]):
                return token
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, SLOT_POLL[1])

    @asynccontextmanager
    async def call(self, user_id: int, *, count: bool = True) -> AsyncIterator[None]:
        member = f"{time.time_ns()}-{secrets.token_hex(4)}"
        try:
            if count:
                reason = await self._run_admit(user_id, member, admit=True)
                if reason is not None:
                    raise BudgetExceeded(reason)
            token = await self._slot()
            if token is None and count:
                await self._refund(keys=self._keys(user_id), args=[member])
        except RedisError as e:
            self._redis_failed(e)
            raise BudgetExceeded(Refusal.busy) from None
        self._redis_ok()
        if token is None:
            raise BudgetExceeded(Refusal.busy)
        try:
            yield
        finally:
            try:
                await self.redis.zrem(f"{self.prefix}:slots", token)
            except RedisError as e:  # the slot expires after slot_ttl anyway
                self._redis_failed(e)

    @asynccontextmanager
    async def exclusive(self, key: str, ttl: float) -> AsyncIterator[bool]:
        token = secrets.token_hex(8)
        name = f"{self.prefix}:lock:{key}"
        try:
            held = bool(await self.redis.set(name, token, nx=True, px=max(1, int(ttl * 1000))))
        except RedisError as e:
            self._redis_failed(e)
            held = False
        try:
            yield held
        finally:
            if held:
                try:
                    await self._unlock(keys=[name], args=[token])
                except RedisError as e:
                    self._redis_failed(e)


__all__ = ["RedisLLMBudget"]
