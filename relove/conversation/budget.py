"""Cost and abuse control for LLM calls: a per-user rate, a per-user daily budget and a global
concurrency cap. Past any of them the caller gets a refusal reason and makes no call.

In-process (one bot process); the counters are small (one deque and one day counter per active
user) and pruned as they age.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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


class LLMBudget:
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
