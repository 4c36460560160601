"""Per-token rate limits (in-process and in Redis) and request body limits."""

from __future__ import annotations

import os
import secrets

import httpx
import pytest

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tests.api.conftest import add_users, api_settings, bearer

REDIS_URL = os.environ.get("RELOVE_TEST_REDIS_URL") or os.environ.get("RELOVE_REDIS_URL")


async def test_memory_bucket_refills_with_the_clock() -> None:
    now = [100.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    assert [await limiter.acquire("t", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.acquire("t", 2.0, 3) == pytest.approx(0.5)
    assert await limiter.acquire("other", 2.0, 3) == 0.0  # buckets are per key
    now[0] += 0.5
    assert await limiter.acquire("t", 2.0, 3) == 0.0
    now[0] += 100
    assert [await limiter.acquire("t", 2.0, 3) for _ in range(4)][-1] > 0  # never above burst


@pytest.mark.skipif(not REDIS_URL, reason="set RELOVE_TEST_REDIS_URL to test the Redis limiter")
async def test_redis_bucket_is_shared_between_limiters() -> None:
    assert REDIS_URL
    prefix = f"relove-test:{os.getpid()}:{secrets.token_hex(4)}:"
    a = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    b = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    try:
        waits = [await (a if i % 2 else b).acquire("tok", 0.01, 4) for i in range(5)]
        assert waits[:4] == [0.0] * 4
        assert 0 < waits[4] <= 100.0
        assert await a.acquire("another", 0.01, 1) == 0.0
    finally:
        await a.close()
        await b.close()


async def test_429_with_retry_after(db, session_factory, database_url, make_token) -> None:
    settings = api_settings(database_url, api_rate_limit=1.0, api_rate_burst=2)
    clock = [0.0]
    app = create_app(settings, db, session_factory,
                     limiter=MemoryRateLimiter(clock=lambda: clock[0]))  # fmt: skip
    token = await make_token("users:read")
    fast = await make_token("users:read", rate_limit=1000.0, rate_burst=1000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        codes = [(await client.get("/api/v1/me", headers=bearer(token))).status_code
                 for _ in range(3)]  # fmt: skip
        assert codes == [200, 200, 429]
        r = await client.get("/api/v1/me", headers=bearer(token))
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1 and r.json()["code"] == "rate_limited"
        # another token has its own bucket, and its own (higher) limit
        assert all([(await client.get("/api/v1/me", headers=bearer(fast))).status_code == 200
                    for _ in range(10)])  # fmt: skip
        clock[0] += 1.0
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200


async def test_body_limits_are_413(client, session_factory, admin_headers, settings) -> None:
    await add_users(session_factory, {"id": 1})
    big = "x" * (settings.api_max_body + 10)
    r = await client.patch("/api/v1/users/1", json={"markers": {"$set": {"a": big}}},
                           headers=admin_headers)  # fmt: skip
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(settings.api_max_body // 65536 + 2):
            yield b"x" * 65536

    r = await client.patch(
        "/api/v1/users/1", content=chunks(),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    # a batch may be larger than an ordinary request
    items = [{"id": 1, "context": {"$set": {f"k{i}": "y" * 200_000}}} for i in range(7)]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert r.status_code == 200, r.text[:300]
