"""The LLM budget shared through the real Redis (RELOVE_TEST_REDIS_URL): two budget objects
stand for two bot instances — one per-user rate, one daily budget, one global concurrency cap
and one summary lock for both; a dead holder's slot comes back; Redis down refuses politely."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest

from relove.conversation.budget import BudgetExceeded, LLMBudget, Refusal
from relove.conversation.budget_redis import RedisLLMBudget
from relove.conversation.service import ReplyKind
from tests.conversation.test_service import chat_requests, make_service, make_user

REDIS_URL = os.environ.get("RELOVE_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="RELOVE_TEST_REDIS_URL is not set")

Factory = Callable[..., RedisLLMBudget]


@pytest.fixture
async def instances() -> AsyncIterator[Factory]:
    """``make(**limits)``: a new "instance" sharing this test's budget (its own Redis client)."""
    assert REDIS_URL
    prefix = f"relove:test:llm:{secrets.token_hex(6)}"
    made: list[RedisLLMBudget] = []

    def make(**limits: object) -> RedisLLMBudget:
        budget = RedisLLMBudget.from_url(REDIS_URL, prefix, **limits)  # type: ignore[arg-type]
        made.append(budget)
        return budget

    yield make
    if made:
        keys = [k async for k in made[0].redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await made[0].redis.delete(*keys)
    for budget in made:
        await budget.close()


async def _admit(budget: RedisLLMBudget | LLMBudget, uid: int) -> Refusal | None:
    try:
        async with budget.call(uid):
            return None
    except BudgetExceeded as e:
        return e.reason


@needs_redis
async def test_rate_and_daily_budget_are_shared_by_instances(instances: Factory) -> None:
    a, b = instances(rate=3, rate_period=60, daily=0), instances(rate=3, rate_period=60, daily=0)
    results = [await _admit(x, 1) for x in (a, b, a, b)]
    assert results == [None, None, None, Refusal.rate]
    assert await a.refusal(1) is Refusal.rate and await b.refusal(1) is Refusal.rate
    assert await _admit(b, 2) is None  # another user is not affected

    day = [date(2026, 1, 1)]
    c = instances(rate=0, daily=2, today=lambda: day[0])
    d = instances(rate=0, daily=2, today=lambda: day[0])
    assert [await _admit(x, 5) for x in (c, d, c)] == [None, None, Refusal.daily]
    assert await d.used_today(5) == 2
    day[0] = date(2026, 1, 2)  # a new UTC day: a new budget
    assert await _admit(d, 5) is None


@needs_redis
async def test_a_busy_refusal_gives_the_rate_back(instances: Factory) -> None:
    a = instances(rate=2, daily=2, concurrency=1, queue_timeout=0)
    b = instances(rate=2, daily=2, concurrency=1, queue_timeout=0)
    async with a.call(1):  # holds the only slot
        assert await _admit(b, 2) is Refusal.busy
    assert await b.used_today(2) == 0
    assert [await _admit(b, 2) for _ in range(3)] == [None, None, Refusal.rate]


@needs_redis
async def test_concurrency_is_one_cap_for_all_instances(instances: Factory) -> None:
    a = instances(rate=0, daily=0, concurrency=2, queue_timeout=0)
    b = instances(rate=0, daily=0, concurrency=2, queue_timeout=30)
    release, both_in = asyncio.Event(), asyncio.Event()
    in_flight = 0
    most = 0

    async def hold(budget: RedisLLMBudget, uid: int) -> Refusal | None:
        nonlocal in_flight, most
        try:
            async with budget.call(uid):
                in_flight += 1
                most = max(most, in_flight)
                if in_flight == 2:
                    both_in.set()
                await release.wait()
                in_flight -= 1
                return None
        except BudgetExceeded as e:
            return e.reason

    holders = [asyncio.create_task(hold(a, uid)) for uid in (1, 2)]
    await asyncio.wait_for(both_in.wait(), 30)
    assert await _admit(a, 3) is Refusal.busy  # no wait allowed: refused at once
    waiter = asyncio.create_task(hold(b, 4))  # waits for a slot (up to 30 s)
    await asyncio.sleep(0.2)
    assert not waiter.done() and in_flight == 2
    release.set()
    assert await asyncio.gather(*holders, waiter) == [None, None, None]
    assert most == 2


@needs_redis
async def test_a_dead_instance_loses_its_slot(instances: Factory) -> None:
    dead = instances(rate=0, daily=0, concurrency=1, queue_timeout=0, slot_ttl=0.5)
    live = instances(rate=0, daily=0, concurrency=1, queue_timeout=0)
    call = dead.call(1)
    await call.__aenter__()  # takes the slot, never gives it back (the process "died")
    assert await _admit(live, 2) is Refusal.busy
    deadline = time.monotonic() + 30
    while await _admit(live, 2) is Refusal.busy:
        assert time.monotonic() < deadline, "the dead holder's slot never expired"
        await asyncio.sleep(0.1)
    await call.__aexit__(None, None, None)


@needs_redis
async def test_summary_lock_has_one_holder(instances: Factory) -> None:
    a, b = instances(), instances()
    async with a.exclusive("summary:1", 30) as held_a:
        async with b.exclusive("summary:1", 30) as held_b:
            assert (held_a, held_b) == (True, False)
        async with b.exclusive("summary:2", 30) as other:
            assert other is True
    async with b.exclusive("summary:1", 30) as again:
        assert again is True  # released on exit


async def test_in_process_summary_lock() -> None:
    budget = LLMBudget()
    async with budget.exclusive("summary:1", 30) as first:
        async with budget.exclusive("summary:1", 30) as second:
            assert (first, second) == (True, False)
    async with budget.exclusive("summary:1", 30) as again:
        assert again is True


async def test_redis_down_refuses_as_busy() -> None:
    budget = RedisLLMBudget.from_url("redis://127.0.0.1:1/0", "relove:test:down",
                                     queue_timeout=0)  # fmt: skip
    try:
        assert await _admit(budget, 1) is Refusal.busy
        assert await budget.refusal(1) is Refusal.busy
        async with budget.exclusive("summary:1", 30) as held:
            assert held is False
    finally:
        await budget.close()


@needs_redis
async def test_two_bot_instances_share_the_daily_budget(
    fake_openai, session_factory, instances: Factory
) -> None:
    user = await make_user(session_factory)
    first = make_service(fake_openai, session_factory,
                         budget=instances(rate=0, daily=2))  # type: ignore[arg-type]
    second = make_service(fake_openai, session_factory,
                          budget=instances(rate=0, daily=2))  # type: ignore[arg-type]
    kinds = [(await s.reply(user, f"m{i}")).kind
             for i, s in enumerate((first, second, first, second))]
    assert kinds == [ReplyKind.answer, ReplyKind.answer, ReplyKind.daily, ReplyKind.daily]
    assert len(chat_requests(fake_openai)) == 2
    for service in (first, second):
        await service.drain()
        await service.provider.close()
