"""Bot handlers over a fake Telegram transport (aiogram session level): no-LLM mode, typing,
split replies, refusals, scenario edge cases, stale buttons."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import AnswerCallbackQuery, SendChatAction, SendMessage

from relove.bot.factory import create_bot, create_dispatcher
from relove.bot.texts import Texts
from relove.config import Settings
from relove.db.models import Gender, User
from relove.telegram.html import parse_html
from relove.telegram.limits import TEXT_LIMIT
from relove.users.lifecycle import set_gender
from relove.users.service import get_user_documents
from tests.bot.fake_telegram import (
    FakeTelegramSession,
    callback_update,
    message_update,
    tg_user,
)
from tests.conversation.fake_openai import Behaviour, FakeOpenAI

EXAMPLES = Path(__file__).parents[2] / "relove" / "conversation" / "examples"
TEXTS = Texts.load("ru")


class Harness:
    def __init__(self, settings: Settings, db) -> None:
        self.telegram = FakeTelegramSession()
        self.bot = create_bot(settings, session=self.telegram)
        self.dp = create_dispatcher(settings, db)

    async def feed(self, *updates) -> None:
        for update in updates:
            await self.dp.feed_raw_update(self.bot, update)

    def sent(self, kind=SendMessage) -> list:
        return [r for r in self.telegram.requests if isinstance(r, kind)]

    async def close(self) -> None:
        # as start_polling does it: shutdown handlers get the workflow data
        await self.dp.emit_shutdown(
            dispatcher=self.dp, bots=[self.bot], bot=self.bot, **self.dp.workflow_data
        )

    async def drain(self) -> None:
        comp = self.dp.workflow_data.get("conversation")
        if comp is not None:
            await comp.drain()


def settings(**extra) -> Settings:
    base = dict(bot_token="42:TEST", admin_ids=[777], _env_file=None,
                scenarios_file=EXAMPLES / "scenarios.yaml", catalog_file=EXAMPLES / "catalog.yaml")
    base.update(extra)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def plain(db) -> AsyncIterator[Harness]:
    h = Harness(settings(), db)
    yield h
    await h.close()


@pytest.fixture
async def llm(db, fake_openai: FakeOpenAI) -> AsyncIterator[Harness]:
    h = Harness(
        settings(llm_base_url=fake_openai.base_url, llm_model="m", llm_timeout=3,
                 llm_retries=0, llm_user_rate=2, summary_every=8),
        db,
    )
    yield h
    await h.close()


async def _user(session_factory, uid: int) -> tuple[User, dict]:
    async with session_factory() as s:
        user = await s.get(User, uid)
        assert user is not None
        return user, await get_user_documents(s, uid)


async def test_no_llm_mode_gives_scripted_replies(plain: Harness, fake_openai: FakeOpenAI):
    await plain.feed(message_update(tg_user(10), "Как дела?"))
    assert [m.text for m in plain.sent()] == [TEXTS("default_reply")]
    assert fake_openai.requests == []


async def test_llm_reply_with_typing_and_split(llm: Harness, fake_openai: FakeOpenAI,
                                               session_factory):
    long = "\n\n".join(f"**Часть {i}.** " + "текст <и> & ещё " * 60 for i in range(8))
    fake_openai.script(Behaviour(text=long))
    await llm.feed(message_update(tg_user(11), "Расскажи подробно"))
    actions = llm.sent(SendChatAction)
    assert actions and actions[0].action == "typing"
    parts = [m.text for m in llm.sent()]
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= TEXT_LIMIT
        parse_html(part)
        assert part.startswith("<b>Часть ")
    _, docs = await _user(session_factory, 11)
    assert [t["role"] for t in docs["context"]["turns"]] == ["user", "assistant"]


async def test_commands_are_not_sent_to_the_llm(llm: Harness, fake_openai: FakeOpenAI):
    await llm.feed(message_update(tg_user(12), "/unknown_command"))
    assert fake_openai.requests == []
    assert [m.text for m in llm.sent()] == [TEXTS("default_reply")]


async def test_failures_and_limits_get_friendly_replies(llm: Harness, fake_openai: FakeOpenAI):
    fake_openai.script(Behaviour(status=500), Behaviour(status=500))
    for text in ("раз", "два", "три"):
        await llm.feed(message_update(tg_user(13), text))
    assert [m.text for m in llm.sent()] == [
        TEXTS("conversation_fallback"),
        TEXTS("conversation_fallback"),
        TEXTS("conversation_rate_limited"),
    ]
    assert len(fake_openai.requests) == 2


async def test_gender_is_inferred_once_and_never_overrides(plain: Harness, session_factory):
    await plain.feed(message_update(tg_user(14, "Ольга"), "привет"))
    await plain.drain()
    user, docs = await _user(session_factory, 14)
    assert user.gender is Gender.female
    assert docs["markers"]["gender_source"] == "inferred"

    # an admin sets another gender; the same name again changes nothing
    # (drained first, and one write statement: a read-then-write transaction on SQLite fails
    # with "database is locked" when the bot's lanes commit in between)
    await plain.feed(message_update(tg_user(777, "Админ"), "/mark 14 x=1"))
    await plain.drain()
    async with session_factory() as s:
        assert await set_gender(s, 14, Gender.male, source="cli", actor="777")
        await s.commit()
    await plain.feed(message_update(tg_user(14, "Ольга"), "ещё"))
    await plain.feed(message_update(tg_user(14, "Ольга Петровна"), "и ещё"))
    await plain.drain()
    user, _ = await _user(session_factory, 14)
    assert user.gender is Gender.male


async def test_scenario_validation_cancel_and_stale_buttons(plain: Harness, session_factory):
    u = tg_user(15, "Саша")
    await plain.feed(message_update(u, "/start"))
    texts = [m.text for m in plain.sent()]
    assert texts[0].startswith("Привет")
    assert "Из какого вы города" in texts[-1]
    await plain.feed(message_update(u, "x"))  # too short
    assert "название города" in plain.sent()[-1].text
    await plain.feed(message_update(u, "Санкт-Петербург"))
    question = plain.sent()[-1]
    assert "Что вам интересно" in question.text
    # "Done" with nothing chosen: asked again, nothing stored
    await plain.feed(callback_update(u, "sc:onboarding:interests:ok"))
    answers = [r for r in plain.telegram.requests if isinstance(r, AnswerCallbackQuery)]
    assert answers[-1].text == TEXTS("scenario_error_choose")
    # typing an option's label works too
    await plain.feed(message_update(u, "психология"))
    _, docs = await _user(session_factory, 15)
    assert docs["markers"]["interests"] == ["psychology"]
    # a stale button from the earlier question
    await plain.feed(callback_update(u, "sc:onboarding:city:0"))
    answers = [r for r in plain.telegram.requests if isinstance(r, AnswerCallbackQuery)]
    assert answers[-1].text == TEXTS("scenario_stale")
    # commands still work mid-flow, then /cancel leaves it
    await plain.feed(message_update(u, "/profile"))
    assert "Санкт-Петербург" in plain.sent()[-1].text
    await plain.feed(message_update(u, "/cancel"))
    assert plain.sent()[-1].text == TEXTS("scenario_cancelled")
    _, docs = await _user(session_factory, 15)
    assert "scenario" not in docs["context"]
    await plain.feed(message_update(u, "просто текст"))
    assert plain.sent()[-1].text == TEXTS("default_reply")


async def test_finished_onboarding_is_not_repeated_by_start(plain: Harness, session_factory):
    u = tg_user(16)
    async with session_factory() as s:
        s.add(User(id=16, first_name="Анна",
                   context={"scenarios_done": {"onboarding": "2026-01-01T00:00:00+00:00"}}))
        await s.commit()
    await plain.feed(message_update(u, "/start"))
    assert [m.text for m in plain.sent()] == [TEXTS("welcome", name="Анна")]
    # its own command runs it again (to update answers)
    await plain.feed(message_update(u, "/onboarding"))
    assert "Из какого вы города" in plain.sent()[-1].text


async def test_recommend_with_an_empty_catalog(db, tmp_path):
    empty = tmp_path / "catalog.yaml"
    empty.write_text("items: []\n", encoding="utf-8")
    h = Harness(settings(catalog_file=empty), db)
    await h.feed(message_update(tg_user(17), "/recommend"))
    assert h.sent()[-1].text == TEXTS("recommend_empty")
    await h.feed(callback_update(tg_user(17), "rec:gone"))
    answers = [r for r in h.telegram.requests if isinstance(r, AnswerCallbackQuery)]
    assert answers[-1].text == TEXTS("recommend_gone")
    await h.close()


async def test_broken_scenario_file_at_start_up_runs_without_flows(db, tmp_path, caplog):
    broken = tmp_path / "s.yaml"
    broken.write_text("flows:\n  - id: x\n    steps: []\n", encoding="utf-8")
    h = Harness(settings(scenarios_file=broken), db)
    await h.feed(message_update(tg_user(18), "/start"))
    assert h.sent()[-1].text == TEXTS("welcome", name="Анна")
    assert any("s.yaml:3" in r.getMessage() for r in caplog.records)
    # the admin fixes the file and reloads
    broken.write_text((EXAMPLES / "scenarios.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copytree(EXAMPLES / "personas", tmp_path / "personas")  # the AI modes' personas
    await h.feed(message_update(tg_user(777, "Админ"), "/reload"))
    assert h.sent()[-1].text == TEXTS("scenarios_reloaded", flows=2, items=7)
    await h.feed(message_update(tg_user(18), "/onboarding"))
    assert "Из какого вы города" in h.sent()[-1].text
    await h.close()


async def test_reload_is_admin_only(plain: Harness):
    await plain.feed(message_update(tg_user(19), "/reload"))
    assert plain.sent()[-1].text == TEXTS("default_reply")
