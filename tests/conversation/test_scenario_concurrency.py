"""Scenario answers under concurrency: fast taps handled at the same time never lose a
selection or answer a question twice (both databases)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage

from relove.users.service import get_user_documents
from tests.bot.fake_telegram import callback_update, message_update, tg_user
from tests.conversation.test_handlers import TEXTS, Harness, settings


@pytest.fixture
async def plain(db) -> AsyncIterator[Harness]:
    h = Harness(settings(), db)
    yield h
    await h.close()


async def _docs(session_factory, uid: int) -> dict:
    async with session_factory() as s:
        return await get_user_documents(s, uid)


async def _at_interests(h: Harness, u: dict) -> None:
    await h.feed(message_update(u, "/start"))
    await h.feed(message_update(u, "Казань"))
    assert "Что вам интересно" in h.sent()[-1].text


async def test_two_concurrent_taps_both_count(plain: Harness, session_factory):
    u = tg_user(31, "Вера")
    await _at_interests(plain, u)
    await asyncio.gather(
        plain.feed(callback_update(u, "sc:onboarding:interests:0")),
        plain.feed(callback_update(u, "sc:onboarding:interests:1")),
    )
    docs = await _docs(session_factory, 31)
    assert sorted(docs["context"]["scenario"]["selected"]) == ["meditation", "psychology"]
    await plain.feed(callback_update(u, "sc:onboarding:interests:ok"))
    docs = await _docs(session_factory, 31)
    assert docs["markers"]["interests"] == ["meditation", "psychology"]


async def test_many_concurrent_taps_toggle_exactly(plain: Harness, session_factory):
    u = tg_user(32, "Вера")
    await _at_interests(plain, u)
    # options 0..5 once each, option 2 a second time (selected, then deselected)
    taps = [0, 1, 2, 3, 4, 5, 2]
    await asyncio.gather(
        *(plain.feed(callback_update(u, f"sc:onboarding:interests:{i}")) for i in taps)
    )
    docs = await _docs(session_factory, 32)
    assert sorted(docs["context"]["scenario"]["selected"]) == sorted(
        ["meditation", "psychology", "body", "creativity", "community"]
    )


async def test_double_tap_on_done_answers_once(plain: Harness, session_factory):
    u = tg_user(33, "Вера")
    await _at_interests(plain, u)
    await plain.feed(callback_update(u, "sc:onboarding:interests:2"))
    before = len(plain.sent())
    await asyncio.gather(
        plain.feed(callback_update(u, "sc:onboarding:interests:ok")),
        plain.feed(callback_update(u, "sc:onboarding:interests:ok")),
    )
    questions = [m.text for m in plain.sent()[before:] if isinstance(m, SendMessage)]
    assert len([t for t in questions if "Как вы о нас узнали" in t]) == 1
    answers = [r for r in plain.telegram.requests if isinstance(r, AnswerCallbackQuery)]
    assert TEXTS("scenario_stale") in [a.text for a in answers[-2:]]
    docs = await _docs(session_factory, 33)
    assert docs["markers"]["interests"] == ["relationships"]
    assert docs["context"]["scenario"]["step"] == "source"
