"""The lean path of ``GET``/``PATCH /users/{id}`` (relove.api.lean) answers exactly as the
FastAPI routes do: the same app built with ``RELOVE_API_LEAN_ROUTES=false`` is the reference,
and every request here is sent to both — status, headers and body must match (``updated_at``
aside, a PATCH's clock). Also: events of a lean PATCH carry ``source=api`` and the token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.events.models import Event
from tests.api.conftest import TokenFactory, add_users, api_settings, bearer

IGNORED_HEADERS = {"date", "content-length"}
CREATED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.fixture
async def clients(
    db: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(lean, reference): the same app with and without the lean path."""
    out = []
    async with contextlib.AsyncExitStack() as stack:
        for lean in (True, False):
            settings = api_settings(database_url, api_lean_routes=lean, api_rate_burst=3,
                                    api_rate_limit=0.001)  # fmt: skip
            app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter())
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            client = httpx.AsyncClient(transport=transport, base_url="http://api.test")
            out.append(await stack.enter_async_context(client))
        yield out[0], out[1]


def _seen(r: httpx.Response) -> tuple[int, list[tuple[str, str]], Any]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in IGNORED_HEADERS)
    try:
        body: Any = r.json()
    except ValueError:
        body = r.content
    if isinstance(body, dict):
        body.pop("updated_at", None)
    return r.status_code, headers, body


async def _both(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], method: str, url: str, **kw: Any
) -> httpx.Response:
    lean, reference = clients
    got = await lean.request(method, url, **kw)
    want = await reference.request(method, url, **kw)
    assert _seen(got) == _seen(want), (method, url, kw)
    return got


@pytest.fixture
async def users(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_users(
        session_factory,
        {"id": 7, "username": "anna", "first_name": "Анна", "gender": "female",
         "markers": {"city": "Сочи", "score": 3, "tags": ["a"], "nested": {"x": 1}},
         "context": {"summary": "<b>йога</b>"}},
        {"id": 8, "first_name": "Иван", "markers": {"score": "high"}},
    )  # fmt: skip


async def test_get_answers_as_the_route(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], users: None, make_token: TokenFactory
) -> None:
    # a fresh token per request: the rate limit (burst 3 per app) is tested below
    for url in (
        "/api/v1/users/7", "/api/v1/users/8", "/api/v1/users/9",
        "/api/v1/users/7?fields=markers,username", "/api/v1/users/7?fields=",
        "/api/v1/users/7?fields=password", "/api/v1/users/7?fields=" + "x" * 501,
        "/api/v1/users/7?fields=id&fields=markers", "/api/v1/users/7?other=1",
        "/api/v1/users/07", "/api/v1/users/0", "/api/v1/users/9223372036854775808",
        "/api/v1/users/-7", "/api/v1/users/7/",
    ):  # fmt: skip
        r = await _both(clients, "GET", url, headers=bearer(await make_token("users:read")))
        assert r.status_code in (200, 404, 422), (url, r.text)
    first = await _both(clients, "GET", "/api/v1/users/7",
                        headers=bearer(await make_token("users:read")))  # fmt: skip
    assert first.json()["markers"]["city"] == "Сочи"
    assert first.json()["context"] == {"summary": "<b>йога</b>"}
    assert first.headers["cache-control"] == "no-store"


async def test_get_refusals_as_the_route(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], users: None, make_token: TokenFactory
) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer rlv_nope"},
                    bearer(await make_token("users:write"))):  # fmt: skip
        r = await _both(clients, "GET", "/api/v1/users/7", headers=headers)
        assert r.status_code in (401, 403)
        assert r.headers["content-type"] == "application/problem+json"
    limited = bearer(await make_token("users:read"))
    statuses = [(await _both(clients, "GET", "/api/v1/users/7", headers=limited)).status_code
                for _ in range(4)]  # fmt: skip
    assert statuses == [200, 200, 200, 429]


async def test_patch_answers_as_the_route(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    users: None,
    make_token: TokenFactory,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    lean, reference = clients
    bodies: list[tuple[Any, int]] = [
        ({"markers": {"$set": {"level": 2}}}, 200),  # one statement on PostgreSQL
        ({"markers": {"$inc": {"score": 1}}}, 200),
        ({"markers": {"$inc": {"city": 1}}}, 422),  # not a number
        ({"markers": {"$add": {"tags": ["b"]}}, "context": {"$set": {"mood": "ok"}}}, 200),
        ({"markers": {"$set": {"nested.y": 2}}, "gender": "male"}, 200),
        ({"markers": {"$set": {"a": 1}, "$unset": ["a"]}}, 422),  # ambiguous
        ({}, 422),  # nothing to change
        ({"markers": {"$set": {"a": 1}}, "extra": 1}, 422),  # unknown field: FastAPI's 422
        ([1, 2], 422),
        ({"markers": {"$set": {"b": "x" * 70_000}}}, 422),  # over the document's size limit
    ]
    for n, (body, status) in enumerate(bodies):
        # each app changes its own copy of the same user
        ids = (100 + 2 * n, 101 + 2 * n)
        await add_users(session_factory, *(
            {"id": i, "first_name": "Анна", "created_at": CREATED,
             "markers": {"city": "Сочи", "score": 3, "tags": ["a"], "nested": {"x": 1}}}
            for i in ids))  # fmt: skip
        token = bearer(await make_token("users:write"))
        got = await lean.patch(f"/api/v1/users/{ids[0]}", json=body, headers=token)
        want = await reference.patch(f"/api/v1/users/{ids[1]}", json=body, headers=token)
        seen = [_seen(r) for r in (got, want)]
        for _, _, doc in seen:
            if isinstance(doc, dict):
                doc.pop("id", None)
                if "detail" in doc:
                    doc["detail"] = doc["detail"].replace(str(ids[1]), str(ids[0]))
        assert seen[0] == seen[1], body
        assert got.status_code == status, (body, got.text)
    for headers in ({}, bearer(await make_token("users:read"))):
        await _both(clients, "PATCH", "/api/v1/users/7",
                    json={"markers": {"$set": {"z": 1}}}, headers=headers)  # fmt: skip
    for url, content, ctype, status in (
        ("/api/v1/users/9", b'{"markers": {"$set": {"z": 1}}}', "application/json", 404),
        ("/api/v1/users/7", b"{not json", "application/json", 422),
        ("/api/v1/users/7", b"", "application/json", 422),
        ("/api/v1/users/7", b'{"markers": {"$set": {"z": 1}}}', "text/plain", 422),
        ("/api/v1/users/7?x=1", b'{"markers": {"$set": {"z": 1}}}', "application/json", 200),
    ):
        token = bearer(await make_token("users:write"))  # within its burst of 3 per app
        r = await _both(clients, "PATCH", url, content=content,
                        headers={**token, "Content-Type": ctype})  # fmt: skip
        assert r.status_code == status, (url, content, r.text)
    token = bearer(await make_token("users:write"))
    big = b'{"markers": {"$set": {"z": "' + b"x" * (2 * 1024 * 1024) + b'"}}}'
    r = await _both(clients, "PATCH", "/api/v1/users/7", content=big,
                    headers={**token, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield big

    got = await lean.patch("/api/v1/users/7", content=chunked(),
                           headers={**token, "Content-Type": "application/json"})  # fmt: skip
    want = await reference.patch("/api/v1/users/7", content=chunked(),
                                 headers={**token, "Content-Type": "application/json"})  # fmt: skip
    assert got.status_code == 413 and _seen(got) == _seen(want)


async def test_lean_patch_writes_what_the_route_writes(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    users: None,
    make_token: TokenFactory,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    lean, _ = clients
    token = bearer(await make_token("users:write", name="crm"))
    r = await lean.patch("/api/v1/users/7", json={"markers": {"$set": {"city": "Тверь"},
                                                               "$inc": {"score": 2}}},
                         headers=token)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["markers"] == {"city": "Тверь", "score": 5, "tags": ["a"],
                                   "nested": {"x": 1}}  # fmt: skip
    async with session_factory() as session:
        events = (await session.execute(
            select(Event.name, Event.props, Event.source, Event.actor)
            .where(Event.user_id == 7).order_by(Event.id)
        )).all()  # fmt: skip
    changed = {e.props["key"]: e for e in events if e.name == "marker.changed"}
    assert set(changed) == {"city", "score"}
    assert {(e.source, e.actor) for e in changed.values()} == {("api", "crm")}
    # an Idempotency-Key goes through FastAPI: the replay is the first answer
    keyed = {**token, "Idempotency-Key": "k1"}
    first = await lean.patch("/api/v1/users/7", json={"markers": {"$inc": {"score": 1}}},
                             headers=keyed)  # fmt: skip
    again = await lean.patch("/api/v1/users/7", json={"markers": {"$inc": {"score": 1}}},
                             headers=keyed)  # fmt: skip
    assert first.json()["markers"]["score"] == again.json()["markers"]["score"] == 6
    assert again.headers.get("idempotent-replayed") == "true"


async def test_batch_answers_and_writes_as_the_route(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    make_token: TokenFactory,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    lean, reference = clients
    # each app changes its own copy of the same users: ids 2xx (lean) and 3xx (reference)
    for base in (200, 300):
        await add_users(session_factory, *(
            {"id": base + i, "first_name": "Анна", "created_at": CREATED,
             "markers": {"score": 3, "city": "Сочи"}} for i in range(4)))  # fmt: skip

    def items(base: int) -> list[dict[str, Any]]:
        return [
            {"id": base, "markers": {"$inc": {"score": 2}}},  # the one-statement batch …
            {"id": base + 1, "markers": {"$set": {"plan": "pro"}, "$inc": {"visits": 1}}},
            {"id": base + 2, "markers": {"$inc": {"city": 1}}},  # … with a refused item
            {"id": base + 90, "markers": {"$set": {"plan": "pro"}}},  # not found
            {"id": base + 3, "gender": "male", "context": {"$set": {"mood": "ok"}}},
            {"id": base + 3, "markers": {"$inc": {"score": 10**400}}},  # too big a number
        ]

    def same(got: httpx.Response, want: httpx.Response) -> None:
        seen = [_seen(r) for r in (got, want)]
        for (_, _, doc), base in zip(seen, (200, 300), strict=True):
            if isinstance(doc, dict):
                for result in doc.get("results", ()):
                    result["id"] -= base
                    if "error" in result:
                        result["error"]["detail"] = result["error"]["detail"].replace(
                            str(base + 90), "N")
        assert seen[0] == seen[1]

    token = bearer(await make_token("users:write", name="crm"))
    got = await lean.post("/api/v1/users:batch", json={"items": items(200)}, headers=token)
    want = await reference.post("/api/v1/users:batch", json={"items": items(300)}, headers=token)
    same(got, want)
    assert got.status_code == 200 and got.json()["failed"] == 3, got.text
    assert [r["status"] for r in got.json()["results"]] == [200, 200, 422, 404, 200, 422]
    async with session_factory() as session:
        for base in (200, 300):
            rows = (await session.execute(
                select(Event.user_id, Event.name, Event.props, Event.source, Event.actor)
                .where(Event.user_id.between(base, base + 99)).order_by(Event.id)
            )).all()  # fmt: skip
            assert {(r.user_id - base, r.props.get("key"), r.source, r.actor) for r in rows} == {
                (0, "score", "api", "crm"), (1, "plan", "api", "crm"),
                (1, "visits", "api", "crm"),
                (3, None, "api", "crm"),  # the gender change (context changes are not events)
            }  # fmt: skip
    # refusals and what the lean path hands on: the answers are FastAPI's (a fresh token per
    # request: each app allows a token a burst of 3)
    writer, reader = "users:write", "users:read"
    for content, ctype, scope in (
        (b'{"items": []}', "application/json", writer),
        (b'{"items": [{"id": 1}]', "application/json", writer),
        (b'{"items": [{"id": 1, "markers": {"$set": {"a": 1}}}], "x": 1}', "application/json",
         writer),
        (b'{"items": [{"id": 201, "gender": "male"}]}', "text/plain", writer),
        (b'{"items": [{"id": 201, "gender": "male"}]}', "application/json", None),
        (b'{"items": [{"id": 201, "gender": "male"}]}', "application/json", reader),
        (b'{"items": [{"id": 1, "markers": {"$set": {"a": NaN}}}]}', "application/json", writer),
        # past 64 bits: orjson would read a float the checks take; json.loads an int refused
        (b'{"items": [{"id": 201, "markers": {"$inc": {"n": 18446744073709551616}}}]}',
         "application/json", writer),
        (b'{"items": [{"id": 201, "markers": {"$set": {"n": [-9223372036854775809]}}}]}',
         "application/json", writer),
    ):  # fmt: skip
        headers = bearer(await make_token(scope)) if scope else {}
        r = await _both(clients, "POST", "/api/v1/users:batch", content=content,
                        headers={**headers, "Content-Type": ctype})  # fmt: skip
        assert r.status_code in (200, 401, 403, 422), (content, r.text)  # NaN: per item
    keyed = {**bearer(await make_token(writer)), "Idempotency-Key": "b1"}
    body = {"items": [{"id": 201, "markers": {"$inc": {"score": 1}}}]}
    first = await lean.post("/api/v1/users:batch", json=body, headers=keyed)
    again = await lean.post("/api/v1/users:batch", json=body, headers=keyed)
    assert first.json() == again.json() and again.headers.get("idempotent-replayed") == "true"
