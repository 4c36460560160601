"""Who may talk to the sandbox (docs/sandbox.md, "Access rules"): programs on this machine yes,
web pages of other sites no — not by ``<img>``/``<form>``/``fetch``, not by DNS rebinding."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from relove.errors import ConfigError
from relove.sandbox.access import AccessPolicy, check_host_name
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox, SandboxConfig
from relove.sandbox.server import running_sandbox

TOKEN = DEFAULT_TOKEN


def _port(sb: Sandbox) -> int:
    assert sb.url
    return int(sb.url.rsplit(":", 1)[1])


async def _started_user(sb: Sandbox) -> int:
    return sb.world.add_user(first_name="Аня", started=True).id


async def test_foreign_host_is_refused_everywhere(sandbox: Sandbox) -> None:
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends
    ``Host: evil.example:<port>``. Nothing answers it: Bot API, control API, web chat."""
    port = _port(sandbox)
    foreign = {"Host": f"evil.example:{port}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.url}/bot{TOKEN}/getMe", headers=foreign) as r:
            assert r.status == 403
            body = await r.json()
            assert body["ok"] is False and body["error_code"] == 403
            assert "evil.example" in body["description"]
        async with http.get(f"{sandbox.url}/", headers=foreign) as r:
            assert r.status == 403
        # The rebinding page is "same origin" with itself: Origin equals Host. Still refused.
        async with http.post(f"{sandbox.url}/api/users", json={"first_name": "Evil"},
                             headers={**foreign, "Origin": f"http://evil.example:{port}"}) as r:
            assert r.status == 403
        async with http.get(f"{sandbox.url}/api/users", headers=foreign) as r:
            assert r.status == 403
        assert sandbox.world.users == {}
        # loopback names and addresses work
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}",
                     f"chat.localhost:{port}", f"[::1]:{port}", f"127.1.2.3:{port}"):
            async with http.get(f"{sandbox.url}/bot{TOKEN}/getMe", headers={"Host": host}) as r:
                assert r.status == 200, host
        for bad in ("", "evil.example:x", "user@127.0.0.1", "127.0.0.1.evil.example"):
            async with http.get(f"{sandbox.url}/api/bot", headers={"Host": bad}) as r:
                assert r.status == 403, bad


async def test_browser_originated_bot_api_calls_are_refused(sandbox: Sandbox) -> None:
    """What an ``<img>``, a ``<form>`` or ``fetch(no-cors)`` on another site sends: none of it
    may send as the bot, set a webhook or drain getUpdates."""
    uid = await _started_user(sandbox)
    sandbox.user_send(uid, "pending update")
    base = f"{sandbox.url}/bot{TOKEN}"
    host = sandbox.url.removeprefix("http://") if sandbox.url else ""
    browser_marks = [
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://{host}.evil.example"},
        {"Referer": "http://evil.example/page.html"},  # an old browser: no Sec-Fetch-*, no Origin
    ]
    async with aiohttp.ClientSession() as http:
        for headers in browser_marks:
            send = {"chat_id": str(uid), "text": "as the bot"}
            async with http.get(f"{base}/sendMessage", params=send, headers=headers) as r:
                assert r.status == 403, headers
                assert (await r.json())["description"].startswith("Forbidden: ")
            async with http.post(f"{base}/sendMessage", data=send, headers=headers) as r:
                assert r.status == 403, headers
            async with http.get(f"{base}/setWebhook", params={"url": "http://evil.example/hook"},
                                headers=headers) as r:
                assert r.status == 403, headers
            async with http.get(f"{base}/getUpdates", params={"offset": "999"},
                                headers=headers) as r:
                assert r.status == 403, headers
    assert [m.text for m in sandbox.world.chats[uid].messages.values()] == ["pending update"]
    assert sandbox.updates.webhook is None
    assert len(sandbox.updates.pending) == 1  # not confirmed away by offset=999
    assert sandbox.stats.refused == {"browser": 4 * len(browser_marks)}
    # Programs send none of those headers; a typed URL (Sec-Fetch-Site: none) and the page's
    # own origin are fine.
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Sec-Fetch-Site": "none"}, {"Sec-Fetch-Site": "same-origin",
                                                        "Origin": f"http://{host}"}):
            async with http.get(f"{base}/getMe", headers=headers) as r:
                assert r.status == 200, headers


async def test_allowed_host_and_listen_address() -> None:
    """``--allow-host`` names (and a specific address to listen on) are answered; the Origin of
    such a host must still be this very server (host and port)."""
    config = SandboxConfig(port=0, allowed_hosts=("DevBox.lan.",))
    async with running_sandbox(config) as sb, aiohttp.ClientSession() as http:
        port = _port(sb)
        own = {"Host": f"devbox.lan:{port}"}
        async with http.get(f"{sb.url}/bot{TOKEN}/getMe", headers=own) as r:
            assert r.status == 200
        async with http.post(f"{sb.url}/api/users", json={"first_name": "Своя"},
                             headers={**own, "Origin": f"http://devbox.lan:{port}"}) as r:
            assert r.status == 201
        for origin in (f"http://devbox.lan:{port + 1}", f"https://devbox.lan:{port}",
                       f"http://127.0.0.1:{port}"):
            async with http.post(f"{sb.url}/api/users", json={"first_name": "Чужая"},
                                 headers={**own, "Origin": origin}) as r:
                assert r.status == 403, origin
        async with http.get(f"{sb.url}/", headers={"Host": f"other.lan:{port}"}) as r:
            assert r.status == 403
    assert AccessPolicy.build("192.168.7.7").host_allowed("192.168.7.7:8081")
    assert not AccessPolicy.build("0.0.0.0").host_allowed("192.168.7.7:8081")


@pytest.mark.parametrize("value", ["http://devbox.lan", "devbox.lan:8081", "dev box", "a/b", ""])
def test_allow_host_values_are_bare_names(value: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        check_host_name(value)


async def test_bad_allow_host_stops_start_up_with_one_line() -> None:
    with pytest.raises(ConfigError, match="sandbox: 'http://x' is not a host name"):
        async with running_sandbox(SandboxConfig(port=0, allowed_hosts=("http://x",))):
            pass


@pytest.fixture
async def busy_port() -> AsyncIterator[int]:
    async with running_sandbox(SandboxConfig(port=0)) as sb:
        yield _port(sb)


async def test_taken_port_says_so(busy_port: int) -> None:
    with pytest.raises(ConfigError) as refused:
        async with running_sandbox(SandboxConfig(port=busy_port)):
            pass
    message = str(refused.value)
    assert message == (f"sandbox: cannot listen on 127.0.0.1:{busy_port}: the port is already "
                       "in use (another sandbox? choose one with --port)")


def test_cli_taken_port_and_bad_host_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from relove.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sandbox", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: sandbox: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another sandbox? choose one with --port)"]
    assert main(["sandbox", "--port", "0", "--allow-host", "http://devbox.lan"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: sandbox: 'http://devbox.lan' is not a host name or IP address (no scheme, "
        "port or path)"]
