"""Logging in and out, sessions, CSRF and the security headers of every page."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from relove.admins.login import create_login_token
from relove.admins.models import ConsoleSession
from relove.admins.service import remove_admin
from tests.web.conftest import (
    OPERATOR_ID,
    VIEWER_ID,
    Browser,
    ConsoleHarness,
    MakeConsole,
    add_users,
)

#: every page and fragment a signed-in admin can GET
PAGES = ["/", "/audience", "/audience/count?filter=VIP", "/audience/rows", "/segments",
         "/segments/edit", "/broadcasts", "/broadcasts/new", "/users/1", "/users/1/chat",
         "/settings", "/audience/export.csv"]
#: every state-changing route (with a valid body apart from the CSRF token)
ACTIONS = [
    ("/audience/bulk", {"filter": "VIP", "op": "add_tag", "value": "x"}),
    ("/users/1/markers", {"key": "city", "value": "Москва"}),
    ("/users/1/markers/unset", {"key": "city"}),
    ("/users/1/message", {"text": "hi"}),
    ("/segments", {"name": "s", "filter": "VIP"}),
    ("/segments/delete", {"name": "s"}),
    ("/broadcasts/preview", {"filter": "VIP", "text": "hi"}),
    ("/broadcasts", {"name": "b", "filter": "VIP", "text": "hi"}),
    ("/broadcasts/1/test", {}),
    ("/broadcasts/1/start", {}),
    ("/settings/admins", {"user_id": "5", "role": "viewer"}),
    ("/settings/admins/remove", {"user_id": "5"}),
    ("/logout", {}),
]


async def test_every_page_needs_a_session(console: ConsoleHarness) -> None:
    async with console.client() as anonymous:
        for path in PAGES:
            r = await anonymous.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login"), path
            r = await anonymous.get(path, headers={"HX-Request": "true"})
            assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/login"), path
        for path, data in ACTIONS:
            r = await anonymous.post(path, data=data)
            assert r.status_code == 401, path


async def test_login_link_works_once_and_sets_a_strict_cookie(console: ConsoleHarness) -> None:
    async with console.sessions.begin() as s:
        token = await create_login_token(s, OPERATOR_ID, now=console.clock())
    async with console.client() as browser:
        page = await browser.get(f"/auth/link/{token}")  # a preview fetch opens nothing
        assert page.status_code == 200 and 'method="post"' in page.text
        r = await browser.post(f"/auth/link/{token}")
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-relove_console=")
        for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
            assert flag in cookie
        assert (await browser.get("/")).status_code == 200
    async with console.client() as other:
        again = await other.post(f"/auth/link/{token}")
        assert again.status_code == 400 and "/login" in again.text
        assert (await other.get("/")).status_code == 303


async def test_plain_http_cookie_is_not_secure(make_console: MakeConsole) -> None:
    console = await make_console(console_url=None)
    browser = await console.login(OPERATOR_ID, base_url="http://console.test")
    async with console.sessions.begin() as s:
        token = await create_login_token(s, OPERATOR_ID, now=console.clock())
    r = await browser.post(f"/auth/link/{token}")
    assert r.headers["set-cookie"].startswith("relove_console=")
    assert "Secure" not in r.headers["set-cookie"]


async def test_expired_link_and_non_admin_are_refused(console: ConsoleHarness) -> None:
    async with console.sessions.begin() as s:
        old = await create_login_token(s, OPERATOR_ID, now=console.clock())
    console.clock.advance(minutes=6)
    async with console.sessions.begin() as s:
        stranger = await create_login_token(s, 123456, now=console.clock())
    async with console.client() as browser:
        assert (await browser.post(f"/auth/link/{old}")).status_code == 400
        assert (await browser.post(f"/auth/link/{stranger}")).status_code == 403
        assert (await browser.get("/")).status_code == 303


async def test_idle_timeout_and_logout(console: ConsoleHarness) -> None:
    browser = await console.login(VIEWER_ID)
    console.clock.advance(minutes=119)
    assert (await browser.get("/")).status_code == 200  # a request refreshes the session
    console.clock.advance(minutes=119)
    assert (await browser.get("/")).status_code == 200
    console.clock.advance(minutes=121)
    assert (await browser.get("/")).status_code == 303  # idle too long
    browser = await console.login(VIEWER_ID)
    r = await browser.post_form("/logout", htmx=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await browser.get("/")).status_code == 303
    async with console.sessions() as s:
        left = await s.scalar(select(func.count()).select_from(ConsoleSession)
                              .where(ConsoleSession.admin_id == VIEWER_ID))
    assert left == 0


async def test_a_removed_admin_loses_the_session_at_once(console: ConsoleHarness) -> None:
    browser = await console.login(OPERATOR_ID)
    assert (await browser.get("/")).status_code == 200
    async with console.sessions.begin() as s:
        await remove_admin(s, console.settings, OPERATOR_ID)
    assert (await browser.get("/")).status_code == 303


async def test_csrf_missing_or_wrong_is_403_everywhere(owner: Browser) -> None:
    for path, data in ACTIONS:
        r = await owner.post_form(path, data, csrf=False)
        assert r.status_code == 403, path
        r = await owner.post_form(path, data, headers={"X-CSRF-Token": "forged"}, csrf=False)
        assert r.status_code == 403, path
        r = await owner.post(path, data={**data, "csrf": "forged"})
        assert r.status_code == 403, path
    assert (await owner.get("/")).status_code == 200  # nothing happened: still signed in


async def test_csrf_token_in_a_plain_form_field_is_accepted(owner: Browser) -> None:
    r = await owner.post("/segments", data={"name": "a", "filter": "VIP", "csrf": owner.csrf})
    assert r.status_code == 303


async def test_security_headers_on_pages_fragments_and_errors(owner: Browser,
                                                              console: ConsoleHarness) -> None:
    await add_users(console.sessions, [{"id": 1, "first_name": "A"}])
    for path in [*PAGES, "/login", "/no-such-page", "/users/424242"]:
        r = await owner.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        if r.headers.get("content-type", "").startswith("text/html"):
            assert "<script>" not in r.text and " style=" not in r.text, path
            assert " onclick=" not in r.text and "hx-on" not in r.text, path


def _widget_answer(bot_token: str, **fields: str) -> dict[str, str]:
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    key = hashlib.sha256(bot_token.encode()).digest()
    return {**fields, "hash": hmac.new(key, check.encode(), hashlib.sha256).hexdigest()}


async def test_telegram_login_widget(make_console: MakeConsole) -> None:
    token = "123:ABC"
    console = await make_console(bot_token=token, console_widget_bot="relove_bot")
    async with console.client() as browser:
        page = await browser.get("/login")
        assert 'data-telegram-login="relove_bot"' in page.text
        assert "https://telegram.org" in page.headers["content-security-policy"]
        auth_date = str(int(console.clock().timestamp()) - 60)
        answer = _widget_answer(token, id=str(OPERATOR_ID), first_name="Ops", auth_date=auth_date)
        forged = {**answer, "first_name": "Mallory"}
        assert (await browser.get("/auth/telegram", params=forged)).status_code == 400
        stale = _widget_answer(token, id=str(OPERATOR_ID), auth_date=str(
            int(console.clock().timestamp()) - 86400 - 60))
        assert (await browser.get("/auth/telegram", params=stale)).status_code == 400
        stranger = _widget_answer(token, id="31337", auth_date=auth_date)
        assert (await browser.get("/auth/telegram", params=stranger)).status_code == 403
        r = await browser.get("/auth/telegram", params=answer)
        assert r.status_code == 303
        assert (await browser.get("/")).status_code == 200
    async with console.client() as replay:
        assert (await replay.get("/auth/telegram", params=answer)).status_code == 400


async def test_widget_is_off_without_configuration(console: ConsoleHarness) -> None:
    async with console.client() as browser:
        page = await browser.get("/login")
        assert "telegram-widget" not in page.text
        assert "telegram.org" not in page.headers["content-security-policy"]
        r = await browser.get("/auth/telegram", params={"id": "1", "hash": "x"})
        assert r.status_code == 404


async def test_next_path_is_local_only(owner: Browser) -> None:
    r = await owner.get("/login", params={"next": "//evil.example/x"})
    assert r.headers["location"] == "/"
    r = await owner.get("/login", params={"next": "/segments"})
    assert r.headers["location"] == "/segments"


async def test_language_switch(owner: Browser) -> None:
    ru = await owner.get("/audience")
    assert "Аудитория" in ru.text
    await owner.get("/lang/en", params={"back": "/audience"})
    en = await owner.get("/audience")
    assert re.search(r"<h1>Audience</h1>", en.text)


def test_widget_check_is_the_documented_algorithm() -> None:
    from relove.admins.login import LoginRefused, widget_check

    now = datetime(2026, 12, 1, tzinfo=UTC)
    data = _widget_answer("1:T", id="42", auth_date=str(int(now.timestamp())), username="a_b")
    assert widget_check(data, "1:T", now=now) == 42
    with pytest.raises(LoginRefused):
        widget_check(data, "1:OTHER", now=now)
    with pytest.raises(LoginRefused):
        widget_check({k: v for k, v in data.items() if k != "hash"}, "1:T", now=now)
