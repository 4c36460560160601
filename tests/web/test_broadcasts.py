"""Broadcasts in the console: compose and preview, create (with tracked links), test-send to
me through the sandbox, state changes, progress over SSE, the tracked-link redirect."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from relove.broadcasts.links import TrackedLink, tracked_url
from relove.broadcasts.models import Broadcast, BroadcastStatus
from relove.broadcasts.service import get_broadcast, recipient_of, template_of
from relove.db.models import User
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.telegram.client import BotApiClient
from relove.telegram.ratelimit import MemoryRateLimitStorage, RateLimiter
from relove.web.telegram import ConsoleBot
from tests.web.conftest import OPERATOR_ID, Browser, ConsoleHarness, MakeConsole, add_users

TEXT = "Привет, <b>{{ user.first_name }}</b>! Город: {{ markers.city | default('?') }}"


async def _seed(console: ConsoleHarness) -> None:
    await add_users(console.sessions, [
        {"id": 11, "first_name": "<i>Аня</i>", "markers": {"city": "Москва", "VIP": True}},
        {"id": 12, "first_name": "Боря", "markers": {"VIP": True}},
        {"id": 13, "first_name": "Вера", "markers": {"VIP": True}, "is_active": False},
    ])


async def _create(browser: Browser, **fields: str) -> int:
    data = {"name": "Осень", "filter": "VIP", "text": TEXT,
            "buttons": "Сайт | https://relove.example/autumn\n---\nA | https://a.example\n"
                       "Канал | tg://resolve?domain=relove", "track": "1", **fields}
    r = await browser.post_form("/broadcasts", data)
    assert r.status_code == 204, r.text
    m = re.fullmatch(r"/broadcasts/(\d+)", r.headers["HX-Redirect"])
    assert m
    return int(m.group(1))


async def test_preview_renders_for_sample_recipients_as_text(operator: Browser,
                                                             console: ConsoleHarness) -> None:
    await _seed(console)
    r = await operator.post_form("/broadcasts/preview", {"filter": "VIP", "text": TEXT})
    assert r.status_code == 200
    assert "Привет, <b>&lt;i&gt;Аня&lt;/i&gt;</b>! Город: Москва" in r.text
    assert "Привет, <b>Боря</b>! Город: ?" in r.text
    assert "Вера" not in r.text  # blocked the bot: not a recipient
    bad = await operator.post_form("/broadcasts/preview", {"filter": "VIP", "text": "<b>x"})
    assert bad.status_code == 422 and "Telegram HTML" in bad.text
    bad = await operator.post_form("/broadcasts/preview", {"filter": "VIP =", "text": "x"})
    assert bad.status_code == 422 and "position" in bad.text


async def test_create_with_tracked_links_and_the_redirect(operator: Browser,
                                                          console: ConsoleHarness) -> None:
    await _seed(console)
    bid = await _create(operator)
    async with console.sessions() as s:
        b = await get_broadcast(s, bid)
        links = (await s.execute(select(TrackedLink).where(TrackedLink.broadcast_id == bid)
                                 .order_by(TrackedLink.id))).scalars().all()
        anya = await s.get(User, 11)
        assert anya is not None
        rendered = template_of(b).render(recipient_of(anya))
    assert b.created_by == OPERATOR_ID and b.status is BroadcastStatus.draft
    assert [lk.url for lk in links] == ["https://relove.example/autumn", "https://a.example"]
    key = b.options["links"]["key"]
    urls = [btn.url for row in rendered.buttons for btn in row]
    assert urls == [tracked_url("https://console.test", key, links[0].id, 11),
                    tracked_url("https://console.test", key, links[1].id, 11),
                    "tg://resolve?domain=relove"]
    assert [len(row) for row in rendered.buttons] == [1, 2]
    path = urls[0].removeprefix("https://console.test")
    async with console.client() as anyone:  # a recipient: no session
        r = await anyone.get(path)
        assert r.status_code == 302 and r.headers["location"] == "https://relove.example/autumn"
        forged = path[:-1] + ("0" if path[-1] != "0" else "1")
        r = await anyone.get(forged)
        assert r.status_code == 302  # still redirects; not counted
        assert (await anyone.get("/l/1.2")).status_code == 404
        assert (await anyone.get("/l/999.11.0123456789abcdef")).status_code == 404
    page = await operator.get(f"/broadcasts/{bid}")
    assert "https://relove.example/autumn" in page.text


async def test_compose_errors_keep_the_form(operator: Browser, console: ConsoleHarness) -> None:
    r = await operator.post_form("/broadcasts", {"name": "x", "filter": "VIP",
                                                 "text": "hi", "buttons": "no url here"})
    assert r.status_code == 422 and "label|url" in r.text and "no url here" in r.text
    async with console.sessions() as s:
        assert (await s.execute(select(Broadcast))).first() is None


async def test_state_changes_and_progress(operator: Browser, console: ConsoleHarness) -> None:
    await _seed(console)
    bid = await _create(operator)
    page = await operator.get(f"/broadcasts/{bid}")
    assert f'hx-post="/broadcasts/{bid}/start"' in page.text
    for action, status in (("start", "running"), ("pause", "paused"), ("resume", "running"),
                           ("cancel", "cancelled")):
        r = await operator.post_form(f"/broadcasts/{bid}/{action}")
        assert r.status_code == 204, (action, r.text)
        async with console.sessions() as s:
            assert (await get_broadcast(s, bid)).status.value == status
    again = await operator.post_form(f"/broadcasts/{bid}/start")
    assert again.status_code == 422 and "cancelled" in again.text
    r = await operator.get(f"/broadcasts/{bid}/progress")
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line.removeprefix("data: ")) for line in r.text.splitlines()
              if line.startswith("data: ")]
    assert events[-1]["final"] is True and events[-1]["targeted"] == 2
    assert events[-1]["pending"] == 2 and events[-1]["status"] == "cancelled"


async def test_schedule(operator: Browser, console: ConsoleHarness) -> None:
    await _seed(console)
    bid = await _create(operator)
    r = await operator.post_form(f"/broadcasts/{bid}/schedule", {"at": "2026-12-24T10:00"})
    assert r.status_code == 204
    async with console.sessions() as s:
        b = await get_broadcast(s, bid)
    assert b.status is BroadcastStatus.scheduled
    assert b.scheduled_at is not None and b.scheduled_at.isoformat() == "2026-12-24T10:00:00+00:00"
    bad = await operator.post_form(f"/broadcasts/{bid}/schedule", {"at": "soon"})
    assert bad.status_code == 422


async def test_test_send_to_me(make_console: MakeConsole, sandbox: Sandbox,
                               sandbox_client: SandboxClient) -> None:
    assert sandbox.url
    bot = ConsoleBot(BotApiClient(DEFAULT_TOKEN, sandbox.url),
                     RateLimiter(MemoryRateLimitStorage()))
    console = await make_console(bot=bot)
    me = await sandbox_client.create_user("Оператор", id=OPERATOR_ID, started=True)
    await add_users(console.sessions, [{"id": me["id"], "first_name": "Оператор"}])
    await _seed(console)
    operator = await console.login(OPERATOR_ID)
    bid = await _create(operator)
    r = await operator.post_form(f"/broadcasts/{bid}/test")
    assert r.status_code == 200, r.text
    sent = (await sandbox_client.messages(OPERATOR_ID, from_bot=True))[-1]
    assert sent["text"].startswith("Привет, Оператор!")
