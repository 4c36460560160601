"""The console in headless Chromium (Debian's /usr/bin/chromium), against the real bot polling
the sandbox Bot API, on the test database: log in through the bot's /login link, filter and
save a segment, edit a marker and see it in /profile, live chat, a broadcast to progress done;
hostile data renders as text and no dialog fires.

``RELOVE_SCREENSHOTS=docs/img`` saves screenshots of the main pages there (for the docs)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.config import Settings
from relove.db.engine import create_session_factory
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.users import service
from relove.web.app import create_console
from relove.web.serve import address_of, bind, serving
from tests.sandbox.test_browser import ARGS, chromium_path  # noqa: F401 - a fixture
from tests.sandbox_fixtures import eventually

pytestmark = pytest.mark.browser
ADMIN = 4343
WAIT = 30_000  # ms: generous, the machine is shared
SHOTS = os.environ.get("RELOVE_SCREENSHOTS")
HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass
class Stack:
    sandbox: Sandbox
    client: SandboxClient
    engine: AsyncEngine
    console_url: str


@pytest.fixture
async def stack(db: AsyncEngine, sandbox: Sandbox,
                sandbox_client: SandboxClient) -> AsyncIterator[Stack]:
    from relove.bot.factory import create_bot, create_dispatcher

    sock = bind("127.0.0.1", 0)
    console_url = address_of(sock)
    settings = Settings(bot_token=DEFAULT_TOKEN, telegram_api_url=sandbox.url,
                        admin_ids=[ADMIN], console_url=console_url, broadcast_poll_seconds=0.2,
                        _env_file=None)  # type: ignore[call-arg]
    bot = create_bot(settings)
    dp = create_dispatcher(settings, db)
    before = sandbox.stats.calls["getUpdates"]
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5,
                                                close_bot_session=True))

    async def polling() -> bool:
        if task.done():
            task.result()
        return sandbox.stats.calls["getUpdates"] > before

    await eventually(polling, timeout=30)
    app = create_console(settings, create_session_factory(db))
    try:
        async with serving(app, sock):
            yield Stack(sandbox, sandbox_client, db, console_url)
    finally:
        pending = set(dp._handle_update_tasks)  # noqa: SLF001 - no public accessor
        if pending:
            await asyncio.wait(pending, timeout=10)
        await dp.stop_polling()
        await asyncio.wait_for(task, 15)


async def _person(stack: Stack, first_name: str, **fields: Any) -> int:
    """A sandbox user who has started the bot (so the bot stored them)."""
    person = await stack.client.create_user(first_name, **fields)
    await stack.client.ask(person["id"], "/start", timeout=30)
    return int(person["id"])


async def _shot(page: Any, name: str) -> None:
    if SHOTS:  # playwright creates the folder
        await page.locator("main h1").scroll_into_view_if_needed()
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def test_operator_flow(stack: Stack, chromium_path: str) -> None:  # noqa: F811
    from playwright.async_api import async_playwright, expect

    client = stack.client
    await client.create_user("Оператор", id=ADMIN, started=True)
    anya = await _person(stack, "Аня", username="anya")
    boris = await _person(stack, "Борис")
    sessions = create_session_factory(stack.engine)
    async with sessions.begin() as s:
        for uid in (anya, boris):
            await service.set_values(s, uid, {"city": "Казань", "interests": ["йога"]})
    dialogs: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS,
                                           headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            async def accept(dialog: Any) -> None:
                dialogs.append(dialog.message)
                await dialog.accept()

            page.on("dialog", accept)
            # 1. /login in the sandbox web chat → the link → signed in
            await page.goto(f"{stack.sandbox.url}/")
            await page.locator(f'li.user[data-user-id="{ADMIN}"]').click()
            await page.fill("#text", "/login")
            await page.press("#text", "Enter")
            link = page.locator('.msg.in a[href*="/auth/link/"]').last
            await expect(link).to_be_visible(timeout=WAIT)
            async with context.expect_page() as opened:
                await link.click()
            page = await opened.value
            page.on("dialog", accept)
            page.on("pageerror", lambda e: errors.append(str(e)))
            await expect(page.locator("h1")).to_have_text("Обзор", timeout=WAIT)
            await _shot(page, "console-dashboard")
            # 2. a filter, its live count, saved as a segment
            await page.goto(f"{stack.console_url}/audience")
            await page.fill("#filter", 'city = "Казань"')
            await expect(page.locator('#count [data-count="2"]')).to_be_visible(timeout=WAIT)
            await page.fill('input[name="name"]', "Казань")
            await page.click("text=Сохранить как сегмент")
            await expect(page.locator("h1")).to_have_text("Сегменты", timeout=WAIT)
            await expect(page.locator("td", has_text="Казань").first).to_be_visible()
            await page.goto(f"{stack.console_url}/audience?filter=city+%3D+%22%D0%9A%D0%B0%D0%B7"
                            "%D0%B0%D0%BD%D1%8C%22")
            await _shot(page, "console-audience")
            # 3. a marker edited in the console shows in /profile in the chat
            await page.goto(f"{stack.console_url}/users/{anya}")
            form = page.locator("form.add-marker")
            await form.locator('input[name="key"]').fill("level")
            await form.locator('select[name="kind"]').select_option("number")
            await form.locator('input[name="value"]').fill("7")
            await form.locator('button[type="submit"]').click()
            await expect(page.locator('tr[data-key="level"] td.value')).to_have_text(
                "7", timeout=WAIT)
            profile = await client.ask(anya, "/profile", timeout=30)
            assert "level: 7" in profile["text"]
            # 4. live chat: the operator's message arrives in the chat
            await page.fill("#live-text", "Здравствуйте, это оператор")
            await page.click("form.live-chat button[type=submit]")
            await expect(page.locator(".bubble.out", has_text="Здравствуйте, это оператор")
                         ).to_be_visible(timeout=WAIT)
            last = await client.wait_for_bot_message(
                anya, where=lambda m: m["text"] == "Здравствуйте, это оператор", timeout=30)
            assert last["from_bot"]
            await _shot(page, "console-user")
            # 5. a broadcast to the segment, sent by the bot's runner, progress to the end
            await page.goto(f"{stack.console_url}/broadcasts/new?filter=segment%3A%22"
                            "%D0%9A%D0%B0%D0%B7%D0%B0%D0%BD%D1%8C%22")
            await page.fill("#b-name", "Осень")
            await page.fill("#b-text", "Привет, <b>{{ user.first_name }}</b>!")
            await page.click("text=Предпросмотр")
            await expect(page.locator("#preview .preview").first).to_contain_text(
                "Привет, Аня!", timeout=WAIT)
            await _shot(page, "console-compose")
            await page.click("text=Создать черновик")
            start = page.locator('button[hx-post$="/start"]')
            await expect(start).to_be_visible(timeout=WAIT)
            await start.click()
            # the progress arrives over SSE; at the end the page shows the results
            await expect(page.locator("h1 .pill")).to_have_text("завершена", timeout=60_000)
            await expect(page.locator('[data-field="sent"]')).to_have_text("2")
            await expect(page.locator('button[hx-post$="/pause"]')).to_have_count(0)
            await _shot(page, "console-broadcast")
            got = await client.wait_for_bot_message(
                boris, where=lambda m: m["text"] == "Привет, Борис!", timeout=30)
            assert got["from_bot"]
            assert dialogs == ["Запустить рассылку сейчас?"]  # only the start confirmation
            assert not [e for e in errors if "Content Security Policy" in e], errors
            assert not [e for e in errors if "Uncaught" in e], errors
        finally:
            await browser.close()


async def test_hostile_data_is_text_and_no_dialog_fires(stack: Stack,
                                                        chromium_path: str) -> None:  # noqa: F811
    from playwright.async_api import async_playwright, expect

    await stack.client.create_user("Оператор", id=ADMIN, started=True)
    evil = await _person(stack, HOSTILE, last_name="{{7*7}}")
    sessions = create_session_factory(stack.engine)
    async with sessions.begin() as s:
        await service.set_values(s, evil, {"bio": "<script>alert(2)</script>", "tpl": "{{7*7}}",
                                           "link": '<a href="javascript:alert(3)">x</a>'})
    from relove.admins.login import create_login_token, login_url

    async with sessions.begin() as s:
        token = await create_login_token(s, ADMIN)
    dialogs: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS,
                                           headless=True)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 800})  # a phone
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.goto(login_url(stack.console_url, token))
            await expect(page.locator("h1")).to_have_text("Обзор", timeout=WAIT)
            await page.goto(f"{stack.console_url}/audience?filter=bio+exists"
                            "&cols=bio&cols=tpl&cols=link")
            row = page.locator("#rows tr").first
            await expect(row).to_contain_text(HOSTILE, timeout=WAIT)
            await expect(row).to_contain_text("<script>alert(2)</script>")
            await expect(row).to_contain_text("{{7*7}}")
            await page.goto(f"{stack.console_url}/users/{evil}")
            await expect(page.locator("h1")).to_have_text(f"{HOSTILE} {{{{7*7}}}}")
            await expect(page.locator('tr[data-key="bio"] td.value')).to_have_text(
                "<script>alert(2)</script>")
            await _shot(page, "console-phone-user")
            await page.goto(f"{stack.console_url}/broadcasts/new?filter=bio+exists")
            await page.fill("#b-text", "Hi {{ user.first_name }} {{ markers.bio }}")
            await page.click("text=Предпросмотр")
            preview = page.locator("#preview .preview").first
            await expect(preview).to_contain_text(f"Hi {HOSTILE} <script>alert(2)</script>",
                                                  timeout=WAIT)
            assert await page.locator("img").count() == 0
            assert dialogs == []
        finally:
            await browser.close()
