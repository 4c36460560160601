"""End to end in the sandbox: a person goes through the onboarding flow, talks with the
companion (a local OpenAI-compatible server), gets recommendations and sees via /profile what
was recorded — the real bot polling the sandbox Bot API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from relove.bot.factory import create_bot, create_dispatcher
from relove.bot.texts import Texts
from relove.config import Settings
from relove.db.models import Gender, User
from relove.sandbox.core import DEFAULT_TOKEN
from tests.conversation.fake_openai import Behaviour, FakeOpenAI
from tests.sandbox_fixtures import LiveBot, eventually

EXAMPLES = Path(__file__).parents[2] / "relove" / "conversation" / "examples"
TEXTS = Texts.load("ru")
ADMIN = 4243


@pytest.fixture
async def companion(db, sandbox, sandbox_client, fake_openai: FakeOpenAI, tmp_path
                    ) -> AsyncIterator[LiveBot]:
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text((EXAMPLES / "scenarios.yaml").read_text(encoding="utf-8"),
                         encoding="utf-8")
    shutil.copytree(EXAMPLES / "personas", tmp_path / "personas")  # the AI modes' personas
    settings = Settings(
        bot_token=DEFAULT_TOKEN,
        telegram_api_url=sandbox.url,
        admin_ids=[ADMIN],
        llm_base_url=fake_openai.base_url,
        llm_api_key="test",
        llm_model="fake-model",
        llm_timeout=5,
        scenarios_file=scenarios,
        catalog_file=EXAMPLES / "catalog.yaml",
        summary_every=2,
        _env_file=None,
    )  # type: ignore[call-arg]
    bot = create_bot(settings)
    dp = create_dispatcher(settings, db)
    polls = sandbox.stats.calls["getUpdates"]
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=5, close_bot_session=True))

    async def polling() -> bool:
        if task.done():
            task.result()
        return sandbox.stats.calls["getUpdates"] > polls

    await eventually(polling, timeout=15)
    try:
        yield LiveBot(sandbox, sandbox_client, bot, dp, settings, db)
    finally:
        pending = set(dp._handle_update_tasks)  # noqa: SLF001
        if pending:
            await asyncio.wait(pending, timeout=10)
        await dp.stop_polling()
        await asyncio.wait_for(task, 15)


async def _row(live: LiveBot, uid: int):
    async with live.engine.connect() as conn:
        return (await conn.execute(select(User.__table__).where(User.id == uid))).first()


def _buttons(message: dict) -> dict[str, str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def test_onboarding_talk_recommend_profile(companion: LiveBot, fake_openai: FakeOpenAI):
    client = companion.client
    maria = await companion.new_user("Мария")
    uid = maria["id"]

    # /start → welcome, intro, then the first question
    sent = await client.start(uid)
    city_q = await client.wait_for_bot_message(
        uid, after=sent["message_id"], where=lambda m: "Из какого вы города" in m["text"])
    assert city_q["parse_mode"] == "HTML"

    # a bad answer is refused politely, nothing stored
    refused = await client.ask(uid, "12345")
    assert "название города" in refused["text"]
    interests_q = await client.ask(uid, "Казань")
    assert "Что вам интересно" in interests_q["text"]
    buttons = _buttons(interests_q)
    await client.press(uid, interests_q["message_id"], data=buttons["🧘 Медитации"], wait=10)
    await client.press(uid, interests_q["message_id"], data=buttons["🧠 Психология"], wait=10)

    def toggled(view: dict) -> bool:
        m = next(m for m in view["messages"] if m["message_id"] == interests_q["message_id"])
        return "✓ 🧠 Психология" in _buttons(m)

    await client.wait_for(uid, toggled)
    await client.press(uid, interests_q["message_id"], data=buttons["Готово ✓"], wait=10)
    source_q = await client.wait_for_bot_message(
        uid, after=interests_q["message_id"], where=lambda m: "Как вы о нас узнали" in m["text"])
    await client.press(uid, source_q["message_id"], data=_buttons(source_q)["От друзей"], wait=10)
    await client.wait_for_bot_message(
        uid, after=source_q["message_id"], where=lambda m: "Спасибо" in m["text"])

    async def onboarded():
        row = await _row(companion, uid)
        return row if row is not None and "scenarios_done" in row.context else None

    row = await eventually(onboarded)
    assert row.markers["city"] == "Казань"
    assert row.markers["interests"] == ["meditation", "psychology"]
    assert row.markers["source"] == "friends"
    assert "scenario" not in row.context
    # gender inferred from the first name, off the hot path
    assert row.gender == Gender.female.value or row.gender == Gender.female
    assert row.markers["gender_source"] == "inferred"

    # free text → the companion, whose prompt knows the answers
    fake_openai.script(Behaviour(text="Рада знакомству! **Медитации** — отличный выбор."))
    answer = await client.ask(uid, "Привет! С чего начать?")
    assert answer["text"] == "Рада знакомству! Медитации — отличный выбор."
    assert any(e["type"] == "bold" for e in answer.get("entities") or [])
    chat_prompt = fake_openai.requests[-1]["messages"][1]["content"]
    assert "Казань" in chat_prompt and "meditation" in chat_prompt
    assert companion.sandbox.stats.calls["sendChatAction"] >= 1

    # /recommend → ranked by interests, with buttons; a pick is recorded
    rec = await client.ask(uid, "/recommend")
    rec_buttons = _buttons(rec)
    assert len(rec_buttons) == 3
    titles = list(rec_buttons)
    assert titles[0] in ("Утренние медитации", "Поток «Весна внутри»", "Курс «Отношения без масок»",
                         "Книжный клуб по психологии", "Практикум по дыханию")
    assert "Встреча сообщества в Москве" not in titles  # `when: city = "Москва"`
    await client.press(uid, rec["message_id"], data=rec_buttons[titles[0]], wait=10)
    await client.wait_for_bot_message(uid, after=rec["message_id"],
                                      where=lambda m: titles[0] in m["text"])
    again = await client.ask(uid, "/recommend")
    assert not set(_buttons(again)) & set(titles)  # rotation: fresh items first

    # /profile shows what was recorded
    profile = await client.ask(uid, "/profile")
    for expected in ("Казань", "meditation, psychology", "friends", "picks"):
        assert expected in profile["text"]
    row = await _row(companion, uid)
    assert row.markers["last_pick"] == rec_buttons[titles[0]].removeprefix("rec:")


async def test_deep_link_skips_the_source_question_and_admin_reload(
        companion: LiveBot, tmp_path: Path):
    client = companion.client
    ivan = await companion.new_user("Иван")
    uid = ivan["id"]
    sent = await client.start(uid, "welcome")
    await client.wait_for_bot_message(uid, after=sent["message_id"],
                                      where=lambda m: "Из какого вы города" in m["text"])
    q = await client.ask(uid, "Москва")
    buttons = _buttons(q)
    await client.press(uid, q["message_id"], data=buttons["🤝 Встречи и общение"], wait=10)
    await client.press(uid, q["message_id"], data=buttons["Готово ✓"], wait=10)
    await client.wait_for_bot_message(uid, after=q["message_id"],
                                      where=lambda m: "Спасибо" in m["text"])
    row = await _row(companion, uid)
    assert row.markers["source"] == "welcome"  # from the deep link; the question was skipped

    # an admin breaks the file: refused with the line, the old flows keep working
    admin = await companion.new_user("Админ", id=ADMIN)
    path = companion.settings.scenarios_file
    path.write_text(path.read_text(encoding="utf-8").replace("type: multi", "type: many"),
                    encoding="utf-8")
    reply = await client.ask(admin["id"], "/reload")
    assert "Файл не принят" in reply["text"] and "scenarios.yaml:" in reply["text"]
    feedback = await client.ask(uid, "/feedback")
    assert "от 1 до 10" in feedback["text"]


async def test_emoji_answer_is_split_by_utf16_units_and_fully_delivered(
        companion: LiveBot, fake_openai: FakeOpenAI):
    """4039 characters of emoji are 8039 UTF-16 units: one message would be refused as too
    long by the sandbox, as by Telegram. The answer arrives whole, in parts that fit."""
    client = companion.client
    user = await companion.new_user("Оля")
    uid = user["id"]
    async with companion.engine.begin() as conn:  # already onboarded: free text → companion
        await conn.execute(User.__table__.insert().values(
            id=uid, first_name="Оля", context={"scenarios_done": {"onboarding": "2026-01-01"}}))
    fake_openai.script(Behaviour(text=("😀" * 100 + " ") * 40))
    sent = await client.send(uid, "Покажи эмодзи")

    def delivered(view: dict) -> list[dict] | None:
        after = sent["message_id"]
        parts = [m for m in view["messages"] if m["from_bot"] and m["message_id"] > after]
        return parts if sum(m["text"].count("😀") for m in parts) >= 4000 else None

    parts = await client.wait_for(uid, delivered, timeout=15)
    assert len(parts) == 2
    assert sum(m["text"].count("😀") for m in parts) == 4000
    for m in parts:
        assert len(m["text"].encode("utf-16-le")) // 2 <= 4096
