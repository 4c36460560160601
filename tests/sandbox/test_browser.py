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
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
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
            assert errors == []
        finally:
            await browser.close()
