"""The control API and the web chat's serving."""

from __future__ import annotations

import aiohttp
import pytest

from relove.sandbox.client import SandboxClient, SandboxError
from relove.sandbox.core import Sandbox


async def test_users_and_refusals(sandbox_client: SandboxClient) -> None:
    anya = await sandbox_client.create_user("Аня", username="@anya", language_code="ru")
    assert anya["username"] == "anya" and anya["started"] is False
    many = await sandbox_client.create_users([{"first_name": f"U{i}"} for i in range(3)])
    assert len({u["id"] for u in many}) == 3
    assert len(await sandbox_client.users()) == 4
    with pytest.raises(SandboxError, match="first_name is required"):
        await sandbox_client.create_user("")
    with pytest.raises(SandboxError, match="already exists"):
        await sandbox_client.create_user("Again", id=anya["id"])
    with pytest.raises(SandboxError, match="no simulated user 5") as missing:
        await sandbox_client.send(5, "hi")
    assert missing.value.status == 404
    await sandbox_client.block(anya["id"])
    with pytest.raises(SandboxError, match="has blocked the bot"):
        await sandbox_client.send(anya["id"], "hi")
    with pytest.raises(SandboxError, match="no reply-keyboard button"):
        await sandbox_client.press_keyboard(many[0]["id"], "Меню")


async def test_sending_marks_started_and_command_entity(sandbox_client: SandboxClient) -> None:
    user = await sandbox_client.create_user("Ира")
    sent = await sandbox_client.start(user["id"], "src_instagram")
    assert sent["text"] == "/start src_instagram"
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert (await sandbox_client.user(user["id"]))["started"] is True


async def test_limits_configurable(sandbox_client: SandboxClient) -> None:
    limits = await sandbox_client.set_limits(rate=100, per_chat=2)
    assert limits["rate"] == 100 and limits["per_chat"] == 2
    with pytest.raises(SandboxError, match="must be positive"):
        await sandbox_client.set_limits(rate=0)
    with pytest.raises(SandboxError, match="unknown limit"):
        await sandbox_client.set_limits(speed=1)


async def test_reset(sandbox_client: SandboxClient) -> None:
    user = await sandbox_client.create_user("Оля")
    await sandbox_client.send(user["id"], "hi")
    await sandbox_client.reset(keep_users=True)
    assert await sandbox_client.messages(user["id"]) == []
    await sandbox_client.reset()
    assert await sandbox_client.users() == []


async def test_web_chat_is_served_with_a_strict_policy(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.url}/") as r:
            assert r.status == 200 and "relove sandbox" in await r.text()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        for name in ("app.js", "style.css"):
            async with http.get(f"{sandbox.url}/static/{name}") as r:
                assert r.status == 200
        async with http.get(f"{sandbox.url}/static/../core.py") as r:
            assert r.status in (403, 404)


async def test_cross_site_requests_are_refused(sandbox: Sandbox) -> None:
    """A web page elsewhere can POST text/plain (no preflight) or send a foreign Origin: both
    are refused and change nothing; same-origin JSON (the web chat) still works."""
    before = len(sandbox.world.users)
    host = sandbox.url.removeprefix("http://")
    async with aiohttp.ClientSession() as http:
        # a "simple" cross-site request: text/plain body that happens to be JSON
        async with http.post(f"{sandbox.url}/api/users", data='{"first_name": "Evil", "id": 777}',
                             headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with http.post(f"{sandbox.url}/api/reset") as r:  # no body, no type
            assert r.status == 415
        async with http.post(f"{sandbox.url}/api/users/1/messages",
                             data="text=/admin", headers={
                                 "Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 415
        # JSON from a foreign origin (or a sandboxed "null" origin)
        for origin in ("http://evil.example", "null", f"http://{host}.evil.example",
                       "http://127.0.0.1:1"):
            async with http.post(f"{sandbox.url}/api/users", json={"first_name": "Evil"},
                                 headers={"Origin": origin}) as r:
                assert r.status == 403, origin
            async with http.get(f"{sandbox.url}/api/users", headers={"Origin": origin}) as r:
                assert r.status == 403, origin
        assert len(sandbox.world.users) == before
        # the web chat's own requests: same origin, JSON
        async with http.post(f"{sandbox.url}/api/users", json={"first_name": "Своя"},
                             headers={"Origin": f"http://{host}"}) as r:
            assert r.status == 201
        async with http.post(f"{sandbox.url}/api/users", data='{"first_name": "Ещё"}',
                             headers={"Content-Type": "application/json; charset=utf-8"}) as r:
            assert r.status == 201
    assert len(sandbox.world.users) == before + 2


@pytest.mark.parametrize("field,value", [
    ("last_name", 5), ("last_name", ["a"]), ("username", {"a": 1}), ("language_code", 7),
    ("first_name", 42), ("is_premium", "yes"), ("started", "no"),
])
async def test_user_fields_must_have_their_types(sandbox_client: SandboxClient, field, value):
    body = {"first_name": "Типы", field: value}
    with pytest.raises(SandboxError, match=field) as refused:
        await sandbox_client.call("POST", "users", json=body)
    assert refused.value.status == 400
    assert await sandbox_client.users() == []
