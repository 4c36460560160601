"""Buttons: every callback the bot builds comes from an aiogram CallbackData factory, and every
press is answered — a current one by its handler, a stale, foreign or forged one by the
catch-all — through the real Dispatcher with Telegram faked at the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage

from relove.bot.handlers.broadcasts import BroadcastCallback
from relove.bot.handlers.forget import ForgetCallback
from relove.bot.handlers.recommend import RecommendCallback
from relove.bot.handlers.scenarios import ScenarioCallback
from relove.users.service import get_user_documents
from tests.bot.fake_telegram import callback_update, message_update, tg_user
from tests.conversation.test_handlers import TEXTS, Harness, settings

FORGED = [
    "sc:onboarding:interests:²",  # "²".isdigit() is true, int("²") raised
    "sc:onboarding:interests:٣",  # an Arabic-Indic digit
    "sc:onboarding:interests:99999",
    "sc:onboarding:interests:999",  # well-formed, no such option
    "sc:onboarding:interests:-1",
    "sc:onboarding:interests",
    "sc:onboarding:interests:0:extra",
    "sc:ONBOARDING:interests:0",
    "sc:",
    "rec:",
    "rec:../../etc",
    "rec:no-such-item",
    "forget:maybe",
    "bc:go:abc",
    "bc:go:1",  # well-formed, but the presser is not an admin
    "bc:launch:1",
    "nonsense",
    "",
]


@pytest.fixture
async def bot(db) -> AsyncIterator[Harness]:
    h = Harness(settings(), db)
    yield h
    await h.close()


def _answers(h: Harness) -> list[AnswerCallbackQuery]:
    return [r for r in h.telegram.requests if isinstance(r, AnswerCallbackQuery)]


def _buttons(h: Harness) -> list[str]:
    markup = h.sent()[-1].reply_markup
    return [b.callback_data for row in markup.inline_keyboard for b in row]


async def test_every_forged_or_stale_press_is_answered_and_changes_nothing(bot, session_factory):
    u = tg_user(21, "Вера")
    await bot.feed(message_update(u, "/start"), message_update(u, "Казань"))
    assert "Что вам интересно" in bot.sent()[-1].text
    for data in FORGED:
        before = len(_answers(bot))
        await bot.feed(callback_update(u, data))  # a crash would raise here
        answers = _answers(bot)[before:]
        assert len(answers) == 1, data
        assert answers[0].text in (TEXTS("button_stale"), TEXTS("scenario_stale"),
                                   TEXTS("recommend_gone")), (data, answers[0].text)  # fmt: skip
    async with session_factory() as s:
        docs = await get_user_documents(s, 21)
    assert "interests" not in docs["markers"]  # no forged press chose anything
    assert docs["context"]["scenario"]["step"] == "interests"  # the flow is where it was


async def test_the_buttons_the_bot_sends_are_its_factories_and_work(bot, session_factory):
    u = tg_user(22, "Юля")
    await bot.feed(message_update(u, "/start"), message_update(u, "Казань"))
    buttons = _buttons(bot)
    parsed = [ScenarioCallback.unpack(b) for b in buttons]
    assert {p.action for p in parsed} >= {"0", "ok"}
    first = next(b for b, p in zip(buttons, parsed, strict=True) if p.option == 0)
    await bot.feed(callback_update(u, first), callback_update(u, ScenarioCallback(
        flow="onboarding", step="interests", action="ok").pack()))  # fmt: skip
    assert [a.text for a in _answers(bot)][-2:] == [None, None]
    async with session_factory() as s:
        docs = await get_user_documents(s, 22)
    assert len(docs["markers"]["interests"]) == 1

    await bot.feed(message_update(u, "/recommend"))
    picks = [RecommendCallback.unpack(b) for b in _buttons(bot)]
    await bot.feed(callback_update(u, picks[0].pack()))
    assert _answers(bot)[-1].text == TEXTS("recommend_picked")

    await bot.feed(message_update(u, "/forget"))
    assert [ForgetCallback.unpack(b).confirm for b in _buttons(bot)] == [True, False]
    await bot.feed(callback_update(u, ForgetCallback(confirm=False).pack()))
    assert bot.sent(SendMessage)  # still here
    assert BroadcastCallback(action="go", id=1).pack() == "bc:go:1"
