"""Scenarios, recommendations and the companion record their events exactly once, through the
real dispatcher over a fake Telegram transport (both databases)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from relove.events import Event
from tests.bot.fake_telegram import callback_update, message_update, tg_user
from tests.conversation.fake_openai import Behaviour, FakeOpenAI
from tests.conversation.test_handlers import Harness, settings


@pytest.fixture
async def plain(db) -> AsyncIterator[Harness]:
    h = Harness(settings(gender_inference=False), db)
    yield h
    await h.close()


async def _events(session_factory, user_id: int | None = None) -> list[Event]:
    query = select(Event).order_by(Event.id)
    if user_id is not None:
        query = query.where(Event.user_id == user_id)
    async with session_factory() as s:
        return list((await s.execute(query)).scalars())


def _names(events: list[Event], prefix: str = "") -> list[str]:
    return [e.name for e in events if e.name.startswith(prefix)]


async def test_a_scenario_records_start_answers_and_completion(plain: Harness, session_factory):
    u = tg_user(21, "Саша")
    await plain.feed(message_update(u, "/start welcome"))  # a deep link: source is known
    await plain.feed(message_update(u, "Москва"))
    await plain.feed(message_update(u, "психология"))
    await plain.feed(callback_update(u, "sc:onboarding:interests:ok"))
    events = await _events(session_factory, 21)
    scenario = [(e.name, e.props) for e in events if e.name.startswith("scenario.")]
    assert scenario == [
        ("scenario.started", {"flow": "onboarding"}),
        ("scenario.answered", {"flow": "onboarding", "step": "city", "marker": "city",
                               "value": "Москва"}),
        ("scenario.answered", {"flow": "onboarding", "step": "interests", "marker": "interests",
                               "value": ["psychology"]}),
        ("scenario.completed", {"flow": "onboarding"}),
    ]  # fmt: skip
    markers = {e.props["key"]: (e.props["new"], e.source) for e in events
               if e.name == "marker.changed"}  # fmt: skip
    assert markers == {"source": ("welcome", "bot"), "last_source": ("welcome", "bot"),
                       "city": ("Москва", "bot"), "interests": (["psychology"], "bot")}  # fmt: skip


async def test_cancel_records_the_step_it_left(plain: Harness, session_factory):
    u = tg_user(22)
    await plain.feed(message_update(u, "/onboarding"), message_update(u, "/cancel"))
    events = await _events(session_factory, 22)
    assert [(e.name, e.props) for e in events if e.name.startswith("scenario.")] == [
        ("scenario.started", {"flow": "onboarding"}),
        ("scenario.cancelled", {"flow": "onboarding", "step": "city"}),
    ]


async def test_recommendations_shown_and_picked(plain: Harness, session_factory):
    u = tg_user(23)
    await plain.feed(message_update(u, "/recommend"))
    (shown,) = [e for e in await _events(session_factory, 23) if e.name == "recommendation.shown"]
    first = shown.props["items"][0]
    await plain.feed(callback_update(u, f"rec:{first}"), callback_update(u, f"rec:{first}"))
    picks = [e.props for e in await _events(session_factory, 23)
             if e.name == "recommendation.picked"]  # fmt: skip
    assert picks == [{"item": first}, {"item": first}]  # each press is a pick
    changed = [e.props["key"] for e in await _events(session_factory, 23)
               if e.name == "marker.changed"]  # fmt: skip
    assert changed == ["picks", "last_pick"]  # the second press changed no marker


async def test_companion_records_llm_replied(db, fake_openai: FakeOpenAI, session_factory):
    h = Harness(settings(llm_base_url=fake_openai.base_url, llm_model="m", llm_timeout=3,
                         llm_retries=0, gender_inference=False), db)  # fmt: skip
    try:
        fake_openai.script(Behaviour(text="Ответ"), Behaviour(status=500))
        await h.feed(message_update(tg_user(26), "вопрос"), message_update(tg_user(26), "ещё"))
        await h.drain()
    finally:
        await h.close()
    replied = [e for e in await _events(session_factory, 26) if e.name == "llm.replied"]
    assert len(replied) == 1  # the failed call gave the fallback: no reply from the model
    props = replied[0].props
    assert (props["model"], props["prompt_tokens"], props["completion_tokens"],
            props["tokens"]) == ("m", 1, 1, 2)  # fmt: skip
    assert props["latency_ms"] >= 0 and replied[0].source == "llm"


async def test_each_writer_once_no_duplicates(plain: Harness, session_factory):
    u = tg_user(27)
    await plain.feed(message_update(u, "/feedback"))
    events = await _events(session_factory, 27)
    counts = Counter(e.name for e in events)
    assert counts["scenario.started"] == 1
    assert all(n == 1 for name, n in counts.items() if name.startswith("scenario."))
