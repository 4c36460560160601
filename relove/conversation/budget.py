"""Cost and abuse control for LLM calls: a per-user rate, a per-user daily budget and a global
concurrency cap. Past any of them the caller gets a refusal reason and makes no call.

:class:`LLMBudget` keeps them in this process (the counters are small: one deque and one day
counter per active user, pruned as they age). With ``RELOVE_REDIS_URL`` every bot instance
shares them through Redis instead (:class:`relove.conversation.budget_redis.RedisLLMBudget`);
:func:`build_budget` picks one. Both also give the per-user *summary lock* (one rolling-summary
pass per user at a time, across processes with Redis): :meth:`BaseLLMBudget.exclusive`.
"""

from __future__ import annotations

import asyncio
import enum
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date

from relove.db.types import utcnow


class Refusal(enum.StrEnum):
    rate = "rate"
    daily = "daily"
    busy = "busy"


class BudgetExceeded(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass
class _UserUsage:
    calls: deque[float] = field(default_factory=deque)
    day: date | None = None
    day_count: int = 0


class BaseLLMBudget(ABC):
    """What the conversation service needs: a refusal check and an admission."""

    @abstractmethod
    async def refusal(self, user_id: int) -> Refusal | None:
        """Why a call for this user would be refused now (without admitting it)."""

    @abstractmethod
    def call(self, user_id: int, *, count: bool = True) -> AbstractAsyncContextManager[None]:
        """Admit one call or raise :class:`BudgetExceeded` (see :class:`LLMBudget`)."""

    @abstractmethod
    def exclusive(self, key: str, ttl: float) -> AbstractAsyncContextManager[bool]:
        """``async with budget.exclusive("summary:42", ttl) as held:`` — ``held`` is True for
        at most one holder of ``key`` at a time (False: someone else has it; skip the work).
        ``ttl`` bounds how long a holder that died keeps it."""

    async def close(self) -> None:  # noqa: B027 - optional: only shared budgets hold any
        """Release connections."""


class LLMBudget(BaseLLMBudget):
    """``async with budget.call(user_id):`` — admits one LLM call or raises
    :class:`BudgetExceeded`.

    * ``rate``: at most ``rate`` calls per ``rate_period`` seconds per user (sliding window);
    * ``daily``: at most ``daily`` calls per user per UTC day (0 = unlimited);
    * ``concurrency``: at most this many calls in flight for the whole process; a call waits up
      to ``queue_timeout`` seconds for a free slot, then is refused as ``busy``.

    Only admitted calls count against the user's rate and budget.
    """

    def __init__(
        self,
        *,
        rate: int = 6,
        rate_period: float = 60.0,
        daily: int = 200,
        concurrency: int = 8,
        queue_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = lambda: utcnow().date(),
    ) -> None:
        self.rate, self.rate_period, self.daily = rate, rate_period, daily
        self.concurrency, self.queue_timeout = concurrency, queue_timeout
        self._clock, self._today = clock, today
        self._users: dict[int, _UserUsage] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._held: set[str] = set()

    def _usage(self, user_id: int) -> _UserUsage:
        usage = self._users.get(user_id)
        if usage is None:
            usage = self._users[user_id] = _UserUsage()
            if len(self._users) > 50_000:
                self._prune()
        return usage

    def _prune(self) -> None:
        now, today = self._clock(), self._today()
        for uid in [
            uid
            for uid, u in self._users.items()
            if (not u.calls or now - u.calls[-1] > self.rate_period) and u.day != today
        ]:
            del self._users[uid]

    def check(self, user_id: int) -> Refusal | None:
        """Why a call for this user would be refused now (without admitting it)."""
        usage = self._usage(user_id)
        now = self._clock()
        while usage.calls and now - usage.calls[0] >= self.rate_period:
            usage.calls.popleft()
        if self.rate and len(usage.calls) >= self.rate:
            return Refusal.rate
        today = self._today()
        if usage.day != today:
            usage.day, usage.day_count = today, 0
        if self.daily and usage.day_count >= self.daily:
            return Refusal.daily
        return None

    async def refusal(self, user_id: int) -> Refusal | None:
        return self.check(user_id)

    @asynccontextmanager
    async def exclusive(self, key: str, ttl: float) -> AsyncIterator[bool]:
        if key in self._held:
            yield False
            return
        self._held.add(key)
        try:
            yield True
        finally:
            self._held.discard(key)

    def _admit(self, user_id: int) -> None:
        usage = self._usage(user_id)
        usage.calls.append(self._clock())
        usage.day_count += 1

    @asynccontextmanager
    async def call(self, user_id: int, *, count: bool = True) -> AsyncIterator[None]:
        """Admit one call. ``count=False`` (background work such as summaries) only takes a
        concurrency slot and does not spend the user's rate or budget."""
        if count:
            reason = self.check(user_id)
            if reason is not None:
                raise BudgetExceeded(reason)
            # Reserve the rate/budget before waiting, so a burst cannot overshoot.
            self._admit(user_id)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout)
        except TimeoutError:
            if count:
                self._refund(user_id)
            raise BudgetExceeded(Refusal.busy) from None
        try:
            yield
        finally:
            self._slots.release()

    def _refund(self, user_id: int) -> None:
        usage = self._usage(user_id)
        if usage.calls:
            usage.calls.pop()
        usage.day_count = max(0, usage.day_count - 1)

    def used_today(self, user_id: int) -> int:
        usage = self._users.get(user_id)
        return usage.day_count if usage and usage.day == self._today() else 0


def budget_prefix(token: str | None) -> str:
    """Redis keys of one bot's budget: ``relove:llm:<bot id>`` (bots never share one)."""
    return f"relove:llm:{(token or '').partition(':')[0] or 'bot'}"


def build_budget(
    *, redis_url: str | None, prefix: str, rate: int, rate_period: float, daily: int,
    concurrency: int, queue_timeout: float, slot_ttl: float,
) -> BaseLLMBudget:
    """Shared through Redis when ``redis_url`` is set, else in this process."""
    if redis_url:
        from relove.conversation.budget_redis import RedisLLMBudget

        return RedisLLMBudget.from_url(
            redis_url, prefix, rate=rate, rate_period=rate_period, daily=daily,
            concurrency=concurrency, queue_timeout=queue_timeout, slot_ttl=slot_ttl,
        )
    return LLMBudget(rate=rate, rate_period=rate_period, daily=daily, concurrency=concurrency,
                     queue_timeout=queue_timeout)
