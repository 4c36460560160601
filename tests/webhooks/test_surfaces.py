"""`relove webhooks …` and ``/api/v1/webhooks``: the same service, refusals in one line."""

from __future__ import annotations

import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from relove.cli import main
from tests.api.conftest import api_settings, bearer
from tests.api.conftest import make_token as make_token  # noqa: F401 (a fixture)
from tests.webhooks.conftest import wait_for, wh_settings


@pytest.fixture
def cli_env(db, database_url, monkeypatch):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_WEBHOOKS_ALLOW_PRIVATE", "true")
    return database_url


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip_and_refusals(cli_env, capsys, monkeypatch):
    code, out, err = _run(capsys, "webhooks", "add", "http://127.0.0.1:9/hook", "--events",
                          "user.*,marker.changed", "--description", "CRM [bold]x[/bold]")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("whsec_") and "endpoint " in err
    code, out, _ = _run(capsys, "webhooks", "list", "--json")
    listed = json.loads(out)
    ep = str(listed[0]["id"])
    assert listed[0]["events"] == ["user.*", "marker.changed"] and "secret" not in out
    assert secret not in out
    code, out, _ = _run(capsys, "webhooks", "list")
    assert "[bold]x[/bold]" in out  # data is text, never markup
    assert _run(capsys, "webhooks", "disable", ep)[0] == 0
    assert json.loads(_run(capsys, "webhooks", "show", ep, "--json")[1])["enabled"] is False
    assert _run(capsys, "webhooks", "enable", ep)[0] == 0
    code, out, err = _run(capsys, "webhooks", "rotate-secret", ep)
    assert code == 0 and out.strip() != secret and out.strip().startswith("whsec_")
    assert _run(capsys, "webhooks", "test", ep)[0] == 0
    code, out, _ = _run(capsys, "webhooks", "deliveries", ep, "--json")
    assert [d["event"] for d in json.loads(out)] == ["webhook.test"]

    for argv, needle in [
        (("webhooks", "show", "99"), "not found"),
        (("webhooks", "add", "ftp://x.org/", "--events", "*"), "http"),
        (("webhooks", "add", "http://127.0.0.1/", "--events", "User.*"), "pattern"),
        (("webhooks", "add", "http://127.0.0.1/", "--events", "*", "--filter", "city ="), ""),
        (("webhooks", "replay", ep), "--event"),
        (("webhooks", "replay", ep, "--since", "yesterday"), "not a time"),
    ]:
        code, out, err = _run(capsys, *argv)
        assert code in (1, 2) and "Traceback" not in err and needle in err, (argv, err)
    monkeypatch.setenv("RELOVE_WEBHOOKS_ALLOW_PRIVATE", "false")
    code, _, err = _run(capsys, "webhooks", "add", "http://10.0.0.1/", "--events", "*")
    assert code == 1 and "private" in err


async def test_api_add_then_delivered(db, session_factory, database_url, sink, start_worker,
                                      make_token):
    from relove.api.app import create_app
    from relove.api.ratelimit import MemoryRateLimiter
    from relove.events import record

    settings = api_settings(database_url, webhooks_allow_private=True)
    app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter())
    reader = bearer(await make_token("webhooks:read"))
    writer = bearer(await make_token("webhooks:write"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api.test") as client:
        r = await client.post("/api/v1/webhooks", headers=reader,
                              json={"url": sink.url("/api"), "events": ["order.*"]})
        assert r.status_code == 403
        r = await client.post("/api/v1/webhooks", headers=writer,
                              json={"url": "http://127.0.0.1:1/", "events": ["Bad"]})
        assert r.status_code in (400, 422) and r.headers["content-type"].startswith(
            "application/problem+json")
        r = await client.post("/api/v1/webhooks", headers=writer,
                              json={"url": sink.url("/api"), "events": ["order.*"]})
        assert r.status_code == 201, r.text
        created = r.json()
        r = await client.get("/api/v1/webhooks", headers=reader)
        assert "secret" not in r.text and r.json()["endpoints"][0]["url"] == sink.url("/api")
        await start_worker(settings=wh_settings(database_url))
        async with session_factory() as session:
            await record(session, 5, "order.paid", {"sum": 3}, source="api")
            await session.commit()
        await wait_for(lambda: sink.on("/api"))
        got = sink.on("/api")[0]
        assert Webhook(created["secret"]).verify(got.body, got.headers)["type"] == "order.paid"

        async def delivered() -> bool:
            r = await client.get(f"/api/v1/webhooks/{created['id']}/deliveries", headers=reader)
            return r.json()["deliveries"][0]["status"] == "delivered"

        await wait_for(delivered)
        event_id = json.loads(got.body)["data"]["event_id"]
        r = await client.post(f"/api/v1/webhooks/{created['id']}/replay", headers=writer,
                              json={"event_id": event_id})
        assert r.status_code == 202 and r.json() == {"queued": 1}
        await wait_for(lambda: len(sink.on("/api")) >= 2)
        r = await client.patch(f"/api/v1/webhooks/{created['id']}", headers=writer,
                               json={"enabled": False})
        assert r.json()["enabled"] is False
        r = await client.get("/api/v1/webhooks/999", headers=reader)
        assert r.status_code == 404
