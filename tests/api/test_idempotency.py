"""Idempotency-Key: replay, mismatch, in flight, expiry, and what is (not) remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from relove.api import idempotency
from relove.api.app import create_app
from relove.api.models import IdempotencyRecord
from relove.api.ratelimit import MemoryRateLimiter
from relove.api.tokens import verify_token
from relove.events.models import Event
from tests.api.conftest import add_users, bearer


def _inc(n: int = 1) -> dict:
    return {"markers": {"$inc": {"count": n}}}


async def _count(client: httpx.AsyncClient, headers: dict) -> int:
    r = await client.get("/api/v1/users/1", headers=headers)
    return int(r.json()["markers"].get("count", 0))


async def test_a_retry_gets_the_first_response(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, {"id": 1})
    headers = {**admin_headers, "Idempotency-Key": "order-1"}
    first = await client.patch("/api/v1/users/1", json=_inc(), headers=headers)
    second = await client.patch("/api/v1/users/1", json=_inc(), headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _count(client, admin_headers) == 1
    async with session_factory() as session:
        changes = await session.scalar(select(func.count()).select_from(Event))
    assert changes == 1  # one marker.changed: the change happened once


async def test_same_key_different_request_is_422(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, {"id": 1}, {"id": 2})
    headers = {**admin_headers, "Idempotency-Key": "k"}
    assert (await client.patch("/api/v1/users/1", json=_inc(), headers=headers)).status_code == 200
    for url, body in (("/api/v1/users/1", _inc(2)), ("/api/v1/users/2", _inc())):
        r = await client.patch(url, json=body, headers=headers)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
    assert await _count(client, admin_headers) == 1


async def test_key_in_flight_is_409(
    client, session_factory, admin_headers, settings
) -> None:
    await add_users(session_factory, {"id": 1})
    async with session_factory() as session:
        principal = await verify_token(session, admin_headers["Authorization"].split()[1])
    body = b'{"markers":{"$inc":{"count":1}}}'
    digest = idempotency.request_hash("PATCH", "/api/v1/users/1", "", body)
    now = datetime.now(UTC)
    # What the first request does before it runs: claim the key. It has not finished yet.
    await idempotency.claim(session_factory, principal.token_id, "busy", digest, now=now,
                            ttl=timedelta(hours=24), lock=timedelta(seconds=300))  # fmt: skip
    r = await client.patch(
        "/api/v1/users/1", content=body,
        headers={**admin_headers, "Idempotency-Key": "busy", "Content-Type": "application/json"},
    )
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    assert await _count(client, admin_headers) == 0


async def test_keys_expire_and_dead_requests_release_them(
    db, session_factory, settings, admin_headers
) -> None:
    now = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter(),
                     clock=lambda: now[0])  # fmt: skip
    await add_users(session_factory, {"id": 1})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        headers = {**admin_headers, "Idempotency-Key": "daily"}
        await client.patch("/api/v1/users/1", json=_inc(), headers=headers)
        now[0] += timedelta(hours=23)
        r = await client.patch("/api/v1/users/1", json=_inc(), headers=headers)
        assert r.headers.get("idempotent-replayed") == "true"
        now[0] += timedelta(hours=2)  # 25 h after the first: the key is free again
        r = await client.patch("/api/v1/users/1", json=_inc(), headers=headers)
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
        assert await _count(client, admin_headers) == 2

        # A request that died while holding its key: after the lock time the key is free.
        async with session_factory() as session:
            principal = await verify_token(session, admin_headers["Authorization"].split()[1])
        body = b'{"markers":{"$inc":{"count":1}}}'
        digest = idempotency.request_hash("PATCH", "/api/v1/users/1", "", body)
        await idempotency.claim(session_factory, principal.token_id, "dead", digest, now=now[0],
                                ttl=timedelta(hours=24), lock=timedelta(seconds=300))  # fmt: skip
        h = {**admin_headers, "Idempotency-Key": "dead", "Content-Type": "application/json"}
        assert (await client.patch("/api/v1/users/1", content=body, headers=h)).status_code == 409
        now[0] += timedelta(seconds=301)
        assert (await client.patch("/api/v1/users/1", content=body, headers=h)).status_code == 200
        assert await _count(client, admin_headers) == 3
        async with session_factory.begin() as session:
            now[0] += timedelta(days=2)
            assert await idempotency.prune(session, now=now[0]) == 2
            assert await session.scalar(
                select(func.count()).select_from(IdempotencyRecord)) == 0


async def test_refusals_are_replayed_and_invalid_requests_are_not_kept(
    client, session_factory, admin_headers
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "u9"}
    # The route ran and answered 404: that answer is the key's.
    assert (await client.patch("/api/v1/users/9", json=_inc(), headers=headers)).status_code == 404
    await add_users(session_factory, {"id": 9})
    r = await client.patch("/api/v1/users/9", json=_inc(), headers=headers)
    assert r.status_code == 404 and r.headers["idempotent-replayed"] == "true"
    # A body that fails validation never ran: the key stays free for the corrected request.
    headers["Idempotency-Key"] = "fixme"
    bad = await client.patch("/api/v1/users/9", json={"markers": {"$nope": 1}}, headers=headers)
    assert bad.status_code == 422
    async with session_factory() as session:
        keys = (await session.execute(select(IdempotencyRecord.key))).scalars().all()
    assert keys == ["u9"]


async def test_each_token_has_its_own_keys(client, session_factory, make_token) -> None:
    await add_users(session_factory, {"id": 1})
    a, b = await make_token("users:write", "users:read"), await make_token("users:write")
    for token in (a, b):
        h = {**bearer(token), "Idempotency-Key": "same"}
        r = await client.patch("/api/v1/users/1", json=_inc(), headers=h)
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert await _count(client, bearer(a)) == 2


async def test_bad_keys_are_refused(client, admin_headers) -> None:
    for key in ("", "x" * 256, "ключ".encode(), "tab\there"):
        h = {**admin_headers, "Idempotency-Key": key}
        r = await client.post("/api/v1/users:batch",
                              json={"items": [{"id": 1, "gender": "male"}]}, headers=h)
        assert r.status_code == 422, key
