"""/broadcasts over HTTP: create (filter and template checked), list, status, preview,
test-send through the sandbox Bot API, start / pause / resume / cancel, progress as SSE."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import func, select

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.broadcasts.models import Delivery
from relove.sandbox.core import DEFAULT_TOKEN
from tests.api.conftest import add_users, api_settings, bearer

PROBLEM = "application/problem+json"
OPERATOR = 777_000_001
DEADLINE_S = 30.0

GOOD = {
    "name": "Осенняя рассылка",
    "filter": 'city = "Москва"',
    "text": "Привет, {{ user.first_name }}! <b>{{ markers.city }}</b>",
    "buttons": [[{"text": "Сайт", "url": "https://example.org/a"}]],
}


async def _seed(sessions: Any) -> None:
    await add_users(
        sessions,
        {"id": 1, "first_name": "Аня", "markers": {"city": "Москва"}},
        {"id": 2, "first_name": "<b>Боб</b>", "markers": {"city": "Москва"}},
        {"id": 3, "first_name": "Вера", "markers": {"city": "Казань"}},
        {"id": 4, "first_name": "Гоша", "markers": {"city": "Москва"}, "is_active": False},
    )


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **over: Any) -> int:
    r = await client.post("/api/v1/broadcasts", json={**GOOD, **over}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_create_list_status_and_preview(client, session_factory, admin_headers) -> None:
    await _seed(session_factory)
    bid = await _create(client, admin_headers)
    second = await _create(client, admin_headers, name="Вторая", paid=True, rate=5)

    r = await client.get(f"/api/v1/broadcasts/{bid}", headers=admin_headers)
    assert r.status_code == 200
    status = r.json()
    assert status["status"] == "draft" and status["targeted"] == 2  # active Muscovites
    assert status["final"] is False and status["sent"] == 0

    r = await client.get(f"/api/v1/broadcasts/{second}/content", headers=admin_headers)
    body = r.json()
    assert body["name"] == "Вторая" and body["paid"] is True and body["rate"] == 5
    assert body["buttons"] == [[{"text": "Сайт", "url": "https://example.org/a"}]]

    r = await client.get("/api/v1/broadcasts", params={"limit": 1}, headers=admin_headers)
    page = r.json()
    assert [b["id"] for b in page["broadcasts"]] == [second]
    r = await client.get("/api/v1/broadcasts", params={"cursor": page["next_cursor"]},
                         headers=admin_headers)  # fmt: skip
    assert [b["id"] for b in r.json()["broadcasts"]] == [bid]

    r = await client.get(f"/api/v1/broadcasts/{bid}/preview", headers=admin_headers)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["count"] == 2
    texts = {s["recipient"]["id"]: s["text"] for s in preview["samples"]}
    assert texts[1] == "Привет, Аня! <b>Москва</b>"
    assert texts[2] == "Привет, &lt;b&gt;Боб&lt;/b&gt;! <b>Москва</b>"  # data is never markup
    assert preview["samples"][0]["buttons"] == [[{"text": "Сайт", "url": "https://example.org/a"}]]


async def test_bad_broadcasts_are_problems_and_store_nothing(
    client, session_factory, admin_headers
) -> None:
    await _seed(session_factory)
    cases = [
        ({"filter": "city = "}, "invalid_filter"),
        ({"text": "Привет, {{ first_name }}"}, "invalid_input"),
        ({"text": "<b>unclosed"}, "invalid_input"),
        ({"text": "   "}, "invalid_input"),
        ({"buttons": [[{"text": "x", "url": "javascript:alert(1)"}]]}, "invalid_input"),
        ({"scheduled_at": "2026-12-01T10:00:00"}, "invalid_input"),
        ({"colour": "red"}, "validation_error"),
        ({"rate": 0}, "validation_error"),
        ({"name": "a\x00b"}, "validation_error"),  # PostgreSQL can't store NUL
        ({"buttons": [[{"text": "a", "url": "https://e.org/\x00"}]]}, "validation_error"),
    ]
    for change, code in cases:
        r = await client.post("/api/v1/broadcasts", json={**GOOD, **change},
                              headers=admin_headers)  # fmt: skip
        assert r.status_code == 422, (change, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == code, (change, r.json())
    r = await client.get("/api/v1/broadcasts", headers=admin_headers)
    assert r.json()["broadcasts"] == []
    r = await client.get("/api/v1/broadcasts/99", headers=admin_headers)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


async def test_scopes(client, session_factory, make_token) -> None:
    await _seed(session_factory)
    read = bearer(await make_token("broadcasts:read"))
    send = bearer(await make_token("broadcasts:send", "broadcasts:read"))
    users = bearer(await make_token("users:read"))
    r = await client.post("/api/v1/broadcasts", json=GOOD, headers=read)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    bid = await _create(client, send)
    for path in ("start", "pause", "resume", "cancel"):
        r = await client.post(f"/api/v1/broadcasts/{bid}/{path}", headers=read)
        assert r.status_code == 403, path
    for path in ("", "/content", "/preview", "/progress"):
        r = await client.get(f"/api/v1/broadcasts/{bid}{path}", headers=users)
        assert r.status_code == 403, path
    r = await client.get("/api/v1/broadcasts", headers={})
    assert r.status_code == 401


async def _events(response: httpx.Response) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    name = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            assert name == "progress"
            events.append(json.loads(line[len("data: "):]))
    return events


async def test_state_changes_and_progress_stream(
    db, session_factory, make_token, database_url
) -> None:
    settings = api_settings(database_url, api_progress_every_seconds=0.05)
    app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter())
    headers = bearer(await make_token("broadcasts:read", "broadcasts:send"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    await _seed(session_factory)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        bid = await _create(client, headers)
        r = await client.post(f"/api/v1/broadcasts/{bid}/resume", headers=headers)
        assert r.status_code == 409 and r.json()["code"] == "conflict"
        assert "draft" in r.json()["detail"]

        r = await client.post(f"/api/v1/broadcasts/{bid}/start", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "running" and r.json()["targeted"] == 2
        async with session_factory() as s:
            count = select(func.count()).select_from(Delivery).where(Delivery.broadcast_id == bid)
            assert (await s.execute(count)).scalar_one() == 2  # the recipients are fixed now
        r = await client.post(f"/api/v1/broadcasts/{bid}/start", headers=headers)
        assert r.status_code == 409

        r = await client.post(f"/api/v1/broadcasts/{bid}/pause", json={"reason": "проверка"},
                              headers=headers)  # fmt: skip
        assert (r.json()["status"], r.json()["reason"]) == ("paused", "проверка")
        # a stream may be bounded by the client: it ends without a final event
        async with client.stream("GET", f"/api/v1/broadcasts/{bid}/progress",
                                 params={"max_seconds": 0.01}, headers=headers) as response:
            bounded = await _events(response)
        assert bounded and bounded[-1]["status"] == "paused" and not bounded[-1]["final"]
        r = await client.post(f"/api/v1/broadcasts/{bid}/resume", headers=headers)
        assert r.json()["status"] == "running"

        async def watch() -> list[dict[str, Any]]:
            async with client.stream("GET", f"/api/v1/broadcasts/{bid}/progress",
                                     headers=headers) as response:  # fmt: skip
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                return await _events(response)

        # ASGITransport hands the body over when the stream has ended: the stream must end
        # by itself once the broadcast is cancelled.
        watching = asyncio.create_task(watch())
        r = await client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=headers)
        assert r.json()["status"] == "cancelled" and r.json()["final"] is True
        events = await asyncio.wait_for(watching, DEADLINE_S)
        assert events and events[-1]["final"] is True and events[-1]["status"] == "cancelled"
        assert all(e["id"] == bid and e["targeted"] == 2 for e in events)
        assert all(not e["final"] for e in events[:-1])

        r = await client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=headers)
        assert r.status_code == 409
        r = await client.get("/api/v1/broadcasts/12345/progress", headers=headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM

        # no recipients: the broadcast finishes at once and the stream ends after one event
        empty = await _create(client, headers, filter='city = "Тверь"')
        r = await client.post(f"/api/v1/broadcasts/{empty}/start", headers=headers)
        assert r.json()["status"] == "finished"
        async with client.stream("GET", f"/api/v1/broadcasts/{empty}/progress",
                                 headers=headers) as response:  # fmt: skip
            events = await _events(response)
        assert [e["status"] for e in events] == ["finished"]


async def test_test_send_through_the_bot(
    db, session_factory, make_token, database_url, sandbox, sandbox_client
) -> None:
    settings = api_settings(
        database_url, bot_token=DEFAULT_TOKEN, telegram_api_url=sandbox.url,
        admin_ids=[OPERATOR],
    )  # fmt: skip
    app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter())
    headers = bearer(await make_token("broadcasts:send"))
    await sandbox_client.create_user("Оператор", id=OPERATOR, started=True)
    await _seed(session_factory)
    await add_users(session_factory, {"id": OPERATOR, "first_name": "Оператор",
                                      "markers": {"city": "Тула"}})  # fmt: skip
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            bid = await _create(client, headers)
            r = await client.post(f"/api/v1/broadcasts/{bid}/test", json={"chat_id": 1},
                                  headers=headers)  # fmt: skip
            assert r.status_code == 422 and "not an admin" in r.json()["detail"]
            r = await client.post(f"/api/v1/broadcasts/{bid}/test", json={"chat_id": OPERATOR},
                                  headers=headers)  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["outcome"] == "sent" and r.json()["message_id"]
    finally:
        assert app.state.api.bot is not None
        await app.state.api.bot.close()
    sent = (await sandbox_client.messages(OPERATOR, from_bot=True))[-1]
    assert sent["text"] == "Привет, Оператор! Тула"


async def test_test_send_without_a_bot_is_refused(client, session_factory, admin_headers,
                                                  settings) -> None:  # fmt: skip
    await _seed(session_factory)
    bid = await _create(client, admin_headers)
    settings.admin_ids.append(OPERATOR)
    r = await client.post(f"/api/v1/broadcasts/{bid}/test", json={"chat_id": OPERATOR},
                          headers=admin_headers)  # fmt: skip
    assert r.status_code == 422 and "RELOVE_BOT_TOKEN" in r.json()["detail"]
