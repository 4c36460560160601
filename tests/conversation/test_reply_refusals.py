"""The reply path never raises on a 400 from Telegram: a refused part is logged and replaced by a
short notice (with the question's buttons), over a fake transport that refuses like Telegram."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.methods import EditMessageReplyMarkup, SendMessage, TelegramMethod

from relove.bot.factory import create_bot, create_dispatcher
from relove.bot.handlers.reply import visible_text
from tests.bot.fake_telegram import FakeTelegramSession, callback_update, message_update, tg_user
from tests.conversation.fake_openai import Behaviour, FakeOpenAI
from tests.conversation.test_handlers import TEXTS, Harness, settings


class RefusingSession(FakeTelegramSession):
    """Answers 400 (with Telegram's description) to requests ``refuse`` picks."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: Callable[[TelegramMethod[Any]], str | None] = lambda m: None
        self.refused: list[TelegramMethod[Any]] = []

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None):
        description = self.refuse(method)
        if description is None:
            return await super().make_request(bot, method, timeout)
        self.refused.append(method)
        body = {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}
        self.check_response(bot, method, 400, json.dumps(body))
        raise AssertionError("check_response must raise")


class RefusingHarness(Harness):
    def __init__(self, s, db) -> None:
        self.telegram = RefusingSession()
        self.bot = create_bot(s, session=self.telegram)
        self.dp = create_dispatcher(s, db)


@pytest.fixture
async def llm(db, fake_openai: FakeOpenAI) -> AsyncIterator[RefusingHarness]:
    h = RefusingHarness(
        settings(llm_base_url=fake_openai.base_url, llm_model="m", llm_timeout=3, llm_retries=0),
        db,
    )
    yield h
    await h.close()


@pytest.fixture
async def plain(db) -> AsyncIterator[RefusingHarness]:
    h = RefusingHarness(settings(), db)
    yield h
    await h.close()


def _too_long(method: TelegramMethod[Any]) -> str | None:
    if isinstance(method, SendMessage) and "Ответ" in method.text:
        return "message is too long"
    return None


async def test_refused_answer_gets_a_notice_not_a_crash(llm: RefusingHarness, fake_openai, caplog):
    llm.telegram.refuse = _too_long
    fake_openai.script(Behaviour(text="Ответ, который Telegram не примет."))
    await llm.feed(message_update(tg_user(41), "Привет"))  # must not raise
    assert len(llm.telegram.refused) == 1
    assert [m.text for m in llm.sent()][-1] == TEXTS("reply_not_delivered")
    assert "message is too long" in caplog.text


async def test_refused_markup_falls_back_to_plain_text(llm: RefusingHarness, fake_openai):
    llm.telegram.refuse = lambda m: (
        "can't parse entities: unsupported start tag"
        if isinstance(m, SendMessage) and m.parse_mode is not None
        and "Ответ" in m.text else None
    )
    fake_openai.script(Behaviour(text="**Ответ** & ещё <немного>"))
    await llm.feed(message_update(tg_user(42), "Привет"))
    last = llm.sent()[-1]
    assert last.parse_mode is None
    assert last.text == "Ответ & ещё <немного>"


async def test_refused_question_keeps_its_buttons(plain: RefusingHarness):
    u = tg_user(43)
    await plain.feed(message_update(u, "/start"))
    plain.telegram.refuse = lambda m: (
        "message is too long"
        if isinstance(m, SendMessage) and "Что вам интересно" in m.text else None
    )
    await plain.feed(message_update(u, "Казань"))  # must not raise
    notice = plain.sent()[-1]
    assert notice.text == TEXTS("scenario_not_delivered")
    buttons = [b.callback_data for row in notice.reply_markup.inline_keyboard for b in row]
    assert "sc:onboarding:interests:0" in buttons and "sc:onboarding:interests:ok" in buttons


async def test_unchanged_keyboard_edit_is_not_a_crash(plain: RefusingHarness):
    u = tg_user(44)
    await plain.feed(message_update(u, "/start"), message_update(u, "Казань"))
    plain.telegram.refuse = lambda m: (
        "message is not modified" if isinstance(m, EditMessageReplyMarkup) else None
    )
    await plain.feed(callback_update(u, "sc:onboarding:interests:0"))  # must not raise
    assert plain.telegram.refused


async def test_long_emoji_catalog_item_is_delivered_within_the_limit(db, tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "items:\n  - id: emoji\n    title: Эмодзи-курс\n    url: https://example.org/e\n"
        f"    text: \"{'🌿' * 2990} конец\"\n",
        encoding="utf-8",
    )
    h = RefusingHarness(settings(catalog_file=catalog), db)
    # refuse like Telegram: more than 4096 UTF-16 units of visible text
    h.telegram.refuse = lambda m: (
        "message is too long"
        if isinstance(m, SendMessage) and len(visible_text(m.text).encode("utf-16-le")) > 8192
        else None
    )
    try:
        u = tg_user(45)
        await h.feed(message_update(u, "/cancel"), callback_update(u, "rec:emoji"))
        assert not h.telegram.refused
        texts = [m.text for m in h.sent()]
        first = next(i for i, t in enumerate(texts) if "Эмодзи-курс" in t)
        assert "https://example.org/e" in texts[first]
        assert "".join(texts[first:]).count("🌿") == 2990 and texts[-1].endswith("конец")
    finally:
        await h.close()
