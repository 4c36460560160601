"""Per-user rate, daily budget and global concurrency cap of LLM calls."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from relove.conversation.budget import BudgetExceeded, LLMBudget, Refusal


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.day = date(2026, 1, 1)


async def _admit(budget: LLMBudget, uid: int) -> Refusal | None:
    try:
        async with budget.call(uid):
            return None
    except BudgetExceeded as e:
        return e.reason


async def test_rate_is_a_sliding_window_per_user():
    c = Clock()
    b = LLMBudget(rate=3, rate_period=60, daily=0, clock=lambda: c.t, today=lambda: c.day)
    assert [await _admit(b, 1) for _ in range(4)] == [None, None, None, Refusal.rate]
    assert await _admit(b, 2) is None  # another user is not affected
    c.t += 59
    assert await _admit(b, 1) is Refusal.rate
    c.t += 1.5
    assert await _admit(b, 1) is None


async def test_daily_budget_resets_at_utc_midnight():
    c = Clock()
    b = LLMBudget(rate=0, daily=5, clock=lambda: c.t, today=lambda: c.day)
    results = [await _admit(b, 1) for _ in range(7)]
    assert results == [None] * 5 + [Refusal.daily] * 2
    assert b.used_today(1) == 5
    c.day = date(2026, 1, 2)
    assert await _admit(b, 1) is None
    assert b.used_today(1) == 1


async def test_refusals_do_not_spend_budget():
    c = Clock()
    b = LLMBudget(rate=2, rate_period=60, daily=3, clock=lambda: c.t, today=lambda: c.day)
    for _ in range(10):
        await _admit(b, 1)
    assert b.used_today(1) == 2


async def test_concurrency_cap_holds_and_overflow_is_refused_as_busy():
    b = LLMBudget(rate=0, daily=0, concurrency=3, queue_timeout=0.2)
    running = 0
    peak = 0
    release = asyncio.Event()

    async def call(uid: int) -> Refusal | None:
        nonlocal running, peak
        try:
            async with b.call(uid):
                running += 1
                peak = max(peak, running)
                await release.wait()
                running -= 1
                return None
        except BudgetExceeded as e:
            return e.reason

    tasks = [asyncio.create_task(call(i)) for i in range(6)]
    await asyncio.sleep(0.4)  # the 3 waiting ones time out
    release.set()
    results = await asyncio.gather(*tasks)
    assert peak == 3
    assert results.count(None) == 3
    assert results.count(Refusal.busy) == 3
    # a busy refusal gave the user's budget back
    assert b.used_today(5) == 0


async def test_waiting_caller_gets_a_freed_slot():
    b = LLMBudget(rate=0, daily=0, concurrency=1, queue_timeout=2)

    async def hold() -> None:
        async with b.call(1):
            await asyncio.sleep(0.1)

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert await _admit(b, 2) is None
    await first


def test_background_calls_do_not_count():
    b = LLMBudget(rate=1, daily=1)

    async def run() -> None:
        async with b.call(1, count=False):
            pass
        async with b.call(1):
            pass
        with pytest.raises(BudgetExceeded):
            async with b.call(1):
                pass

    asyncio.run(run())
