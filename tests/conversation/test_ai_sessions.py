"""AI sessions end to end through the bot (aiogram over a fake Telegram session) with the real
``openai`` client talking to a fake OpenAI-compatible HTTP server; both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage
from sqlalchemy import select, update

from relove.conversation.ai_sessions.models import AISession, AISessionTurn
from relove.conversation.scenarios import load_scenarios
from relove.conversation.yamlfile import DefinitionError
from relove.db.types import utcnow
from relove.events.models import Event
from relove.users.service import get_user_documents
from tests.bot.fake_telegram import callback_update, message_update, tg_user
from tests.conversation.fake_openai import FakeOpenAI
from tests.conversation.test_cli import relove
from tests.conversation.test_handlers import EXAMPLES, TEXTS, Harness, settings

STAGES = (
    load_scenarios(EXAMPLES / "scenarios.yaml")
    .mode("diagnostic")
    .result[  # type: ignore[union-attr]
        "journey_stage"
    ]
    .enum
)
GOOD = {
    "journey_stage": "Зов к приключению",
    "state": "Чувствует, что <пора> меняться.",
    "next_steps": ["Записать, что зовёт", "Поговорить с другом"],
}
BAD_STAGE = json.dumps({**GOOD, "journey_stage": "Этап 13"}, ensure_ascii=False)


class Model:
    """What the fake model answers: a numbered question to a conversation turn, the queued
    results (JSON texts) to result requests (those carry ``response_format``)."""

    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.results: list[str] = []
        self.asked = 0
        server.responder = self.respond

    def respond(self, body: dict[str, Any]) -> str:
        if "response_format" in body:
            return self.results.pop(0) if self.results else "{}"
        self.asked += 1
        return f"Вопрос {self.asked}?"

    def result_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.server.requests if "response_format" in r]


@pytest.fixture
async def bot(db, fake_openai: FakeOpenAI) -> AsyncIterator[Harness]:
    h = Harness(ai_settings(fake_openai), db)
    yield h
    await h.close()


def ai_settings(fake_openai: FakeOpenAI, **extra: Any):
    return settings(
        llm_base_url=fake_openai.base_url,
        llm_model="m",
        llm_timeout=10,
        llm_retries=0,
        llm_user_rate=0,
        summary_every=50,
        history_turns=100,
        **extra,
    )


def texts_of(h: Harness) -> list[str]:
    return [m.text for m in h.sent(SendMessage)]


async def sessions(session_factory, uid: int) -> list[AISession]:
    async with session_factory() as s:
        rows = await s.scalars(
            select(AISession).where(AISession.user_id == uid).order_by(AISession.id)
        )
        return list(rows)


async def turn_rows(session_factory, sid: int) -> list[tuple[int, str, str]]:
    async with session_factory() as s:
        rows = await s.execute(
            select(AISessionTurn.n, AISessionTurn.role, AISessionTurn.text)
            .where(AISessionTurn.session_id == sid)
            .order_by(AISessionTurn.n)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def events(session_factory, uid: int, prefix: str = "") -> list[Event]:
    async with session_factory() as s:
        rows = await s.scalars(select(Event).where(Event.user_id == uid).order_by(Event.id))
        return [e for e in rows if e.name.startswith(prefix)]


async def docs(session_factory, uid: int) -> dict[str, Any]:
    async with session_factory() as s:
        return await get_user_documents(s, uid)


async def test_diagnostic_session_writes_a_validated_stage(
    bot: Harness, fake_openai, session_factory
):
    model = Model(fake_openai)
    user = tg_user(501)
    await bot.feed(message_update(user, "/diagnostic"))
    greeting = bot.sent(SendMessage)[-1]
    assert greeting.text.startswith("Привет. Давай немного поговорим")
    button = greeting.reply_markup.inline_keyboard[0][0]  # type: ignore[union-attr]
    assert button.text == "Завершить и получить итог"
    for i in range(4):
        await bot.feed(message_update(user, f"Моя история, часть {i}"))
    assert texts_of(bot)[-4:] == ["Вопрос 1?", "Вопрос 2?", "Вопрос 3?", "Вопрос 4?"]
    # the mode's persona and goal reach the model, with the whole session so far
    last = fake_openai.requests[-1]
    assert "пути героя" in last["messages"][0]["content"]
    assert [m["content"] for m in last["messages"][2:]][:2] == [
        "Привет. Давай немного поговорим о тебе. Расскажи, что привело тебя сюда?",
        "Моя история, часть 0",
    ]

    model.results.append(json.dumps(GOOD, ensure_ascii=False))
    await bot.feed(message_update(user, "/end_diagnostic"))
    request = model.result_requests()[-1]
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["journey_stage"]["enum"] == STAGES and len(STAGES) == 12

    d = await docs(session_factory, 501)
    assert d["markers"]["journey_stage"] == "Зов к приключению"
    assert d["context"]["diagnostic"]["state"] == GOOD["state"]
    assert d["context"]["diagnostic"]["next_steps"] == GOOD["next_steps"]
    assert "at" in d["context"]["diagnostic"] and "ai_session" not in d["context"]
    reply = texts_of(bot)[-1]
    assert "«Зов к приключению»" in reply and "&lt;пора&gt;" in reply  # data is never markup
    assert "— Записать, что зовёт" in reply

    [row] = await sessions(session_factory, 501)
    assert (row.status, row.end_reason, row.turn_count) == ("completed", "requested", 4)
    assert row.result and row.result["journey_stage"] == "Зов к приключению"
    names = [e.name for e in await events(session_factory, 501, "ai_session.")]
    assert names == ["ai_session.started"] + ["ai_session.turn"] * 4 + ["ai_session.completed"]
    [changed] = [
        e
        for e in await events(session_factory, 501, "marker.changed")
        if e.props["key"] == "journey_stage"
    ]
    assert (changed.source, changed.actor) == ("llm", f"ai_session:{row.id}")
    assert changed.props["new"] == "Зов к приключению"

    # the companion is back: free text is no longer part of the session
    await bot.feed(message_update(user, "Спасибо!"))
    assert texts_of(bot)[-1] == "Вопрос 5?"
    assert len(await turn_rows(session_factory, row.id)) == 9  # greeting + 4 exchanges


async def test_invalid_result_gets_one_repair_then_a_polite_failure(
    bot: Harness, fake_openai, session_factory
):
    model = Model(fake_openai)
    user = tg_user(502)
    await bot.feed(message_update(user, "/diagnostic"), message_update(user, "Мне тревожно"))
    # repaired: the second answer is valid and is the one written
    model.results += [BAD_STAGE, json.dumps(GOOD, ensure_ascii=False)]
    [sid] = [r.id for r in await sessions(session_factory, 502)]
    await bot.feed(callback_update(user, f"ais:{sid}"))  # the end button
    _, second = model.result_requests()
    assert second["messages"][-2]["content"] == BAD_STAGE  # its own answer, then why
    assert second["messages"][-1]["content"].startswith(  # the validation error is quoted
        'Ответ не прошёл проверку: journey_stage: "Этап 13" is not one of the allowed values'
    )
    assert (await docs(session_factory, 502))["markers"]["journey_stage"] == GOOD["journey_stage"]

    # twice invalid (not JSON, then a too-long state): nothing is written
    await bot.feed(message_update(user, "/diagnostic"), message_update(user, "Снова я"))
    model.results += ["Думаю, это Зов к приключению", json.dumps({**GOOD, "state": "x" * 601})]
    before = await docs(session_factory, 502)
    await bot.feed(message_update(user, "/end_diagnostic"))
    assert texts_of(bot)[-1] == TEXTS("ai_session_failed")
    after = await docs(session_factory, 502)
    assert after["markers"] == before["markers"]
    assert after["context"].get("diagnostic") == before["context"].get("diagnostic")
    assert "ai_session" not in after["context"]
    last = (await sessions(session_factory, 502))[-1]
    assert (last.status, last.end_reason, last.result) == ("failed", "invalid_result", None)
    assert len(model.result_requests()) == 4  # one retry each time, never more


async def test_coach_recommends_only_catalog_items_after_ten_exchanges(
    bot: Harness, fake_openai, session_factory
):
    model = Model(fake_openai)
    user = tg_user(503)
    await bot.feed(message_update(user, "/natasha"))
    summary = {
        "insights": ["Боится ошибиться"],
        "patterns": ["Откладывает"],
        "difficulties": [],
        "themes": ["страх"],
        "next_steps": ["Сделать один звонок"],
        "recommendations": [
            {"id": "no_such_stream", "reason": "—"},
            {"id": "spring_stream", "reason": "Готов к практике"},
        ],
    }
    model.results.append(json.dumps(summary, ensure_ascii=False))
    for i in range(10):
        await bot.feed(message_update(user, f"ответ {i}"))
    # the tenth message ends the session by itself: the summary, then the invitation
    request = model.result_requests()[-1]
    offered = request["response_format"]["json_schema"]["schema"]["properties"]
    assert "spring_stream" in offered["recommendations"]["items"]["properties"]["id"]["enum"]
    summary_text, invitation = texts_of(bot)[-2:]
    assert "Боится ошибиться" in summary_text
    assert "Поток «Весна внутри»</b> — Готов к практике" in invitation
    assert "no_such_stream" not in invitation
    markup = bot.sent(SendMessage)[-1].reply_markup
    assert [b[0].callback_data for b in markup.inline_keyboard] == ["rec:spring_stream"]  # type: ignore[union-attr]
    ctx = (await docs(session_factory, 503))["context"]
    assert ctx["coach_summary"]["insights"] == ["Боится ошибиться"]
    [shown] = await events(session_factory, 503, "recommendation.shown")
    assert shown.props["items"] == ["spring_stream"] and shown.source == "llm"
    [row] = await sessions(session_factory, 503)
    assert (row.status, row.end_reason, row.turn_count) == ("completed", "max_turns", 10)


async def test_a_restart_in_the_middle_continues_the_session(db, fake_openai, session_factory):
    Model(fake_openai)
    user = tg_user(504)
    first = Harness(ai_settings(fake_openai), db)
    await first.feed(message_update(user, "/diagnostic"), message_update(user, "до рестарта"))
    await first.close()

    second = Harness(ai_settings(fake_openai), db)  # a new process: nothing in memory
    try:
        await second.feed(message_update(user, "после рестарта"))
        contents = [m["content"] for m in fake_openai.requests[-1]["messages"]]
        assert contents[-3:] == ["до рестарта", "Вопрос 1?", "после рестарта"]
        assert texts_of(second) == ["Вопрос 2?"]
        [row] = await sessions(session_factory, 504)
        assert (row.status, row.turn_count) == ("active", 2)
    finally:
        await second.close()


async def test_concurrent_messages_are_answered_in_turn(bot: Harness, fake_openai, session_factory):
    Model(fake_openai)
    fake_openai.delay = 0.3  # the first answer is still being written when the second arrives
    user = tg_user(505)
    await bot.feed(message_update(user, "/diagnostic"))
    await asyncio.gather(
        bot.feed(message_update(user, "раз")), bot.feed(message_update(user, "два"))
    )
    [row] = await sessions(session_factory, 505)
    turns = await turn_rows(session_factory, row.id)
    assert [r for _, r, _ in turns] == ["assistant", "user", "assistant", "user", "assistant"]
    assert [t for _, r, t in turns if r == "assistant"][1:] == ["Вопрос 1?", "Вопрос 2?"]
    assert row.turn_count == 2
    # the second message's request saw the first one's answer
    contents = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert "Вопрос 1?" in contents and fake_openai.max_in_flight == 1


async def test_idle_stop_and_switch(bot: Harness, fake_openai, session_factory):
    Model(fake_openai)
    user = tg_user(506)
    await bot.feed(message_update(user, "/diagnostic"))
    # switching: the diagnostic is left, the coach starts; one active session
    await bot.feed(message_update(user, "/natasha"))
    first, second = await sessions(session_factory, 506)
    assert (first.status, first.end_reason) == ("abandoned", "switch")
    assert second.status == "active"
    assert (await docs(session_factory, 506))["context"]["ai_session"]["mode"] == "natasha"

    # idle past end.idle (6h): the next message closes it and the companion answers
    async with session_factory() as s:
        await s.execute(
            update(AISession)
            .where(AISession.id == second.id)
            .values(last_activity_at=utcnow() - timedelta(hours=7))
        )
        await s.commit()
    await bot.feed(message_update(user, "я вернулся"))
    assert texts_of(bot)[-2:] == [TEXTS("ai_session_expired"), "Вопрос 1?"]
    second = (await sessions(session_factory, 506))[1]
    assert (second.status, second.end_reason) == ("abandoned", "idle")

    # /stop leaves a session without a result; the end button of an ended one is refused
    await bot.feed(message_update(user, "/diagnostic"), message_update(user, "/stop"))
    third = (await sessions(session_factory, 506))[2]
    assert (third.status, third.end_reason, third.result) == ("abandoned", "stopped", None)
    assert texts_of(bot)[-1] == TEXTS("ai_session_stopped")
    await bot.feed(callback_update(user, f"ais:{third.id}"))
    [stale] = [r for r in bot.telegram.requests if isinstance(r, AnswerCallbackQuery)]
    assert stale.text == TEXTS("ai_session_not_active")
    reasons = [e.props["reason"] for e in await events(session_factory, 506, "ai_session.aband")]
    assert reasons == ["switch", "idle", "stopped"]


async def test_without_a_model_the_mode_says_so(db, session_factory):
    h = Harness(settings(), db)
    try:
        await h.feed(message_update(tg_user(507), "/diagnostic"))
        assert texts_of(h) == [TEXTS("ai_session_needs_model")]
        assert await sessions(session_factory, 507) == []
    finally:
        await h.close()


def test_broken_modes_are_refused_with_their_line(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text(
        "ai_sessions:\n"
        "  - id: d\n"
        "    goal: g\n"
        "    result: {stage: {enum: [a, b]}}\n"
        "    write:\n"
        "      markers.stage: stag\n"
    )
    with pytest.raises(DefinitionError) as e:
        load_scenarios(bad)
    assert str(e.value).startswith(f"{bad}:5: ai_sessions.0.write.markers.stage:")
    assert "'stag' is not a result field" in str(e.value)
    bad.write_text(
        "flows:\n  - {id: f, start: {commands: [diag]}, steps: [{id: s, text: t, marker: m}]}\n"
        "ai_sessions:\n  - {id: d, goal: g, start: {commands: [diag]}}\n"
    )
    with pytest.raises(DefinitionError, match="/diag is used by both 'f' and 'd'"):
        load_scenarios(bad)


async def test_check_lists_the_modes(tmp_path):
    code, out, err = await relove(
        "conversation",
        "check",
        "--scenarios",
        str(EXAMPLES / "scenarios.yaml"),
        RELOVE_DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
    )
    assert code == 0, err
    assert "AI mode diagnostic: up to 12 turns, result journey_stage, state, next_steps" in out
    assert "AI mode natasha" in out and "recommendations" in out


async def test_eval_reports_accuracy_per_field(fake_openai: FakeOpenAI, tmp_path):
    answers = {  # what the fake model concludes from each scripted dialogue
        "ипотека": {**GOOD, "journey_stage": "Отказ от призыва"},
        "развод": {**GOOD, "journey_stage": "Обычный мир"},  # wrong
    }
    attempts: dict[str, int] = {}

    def respond(body: dict[str, Any]) -> str:
        dialogue = body["messages"][1]["content"]
        key = next((k for k in answers if k in dialogue), "")
        attempts[key] = attempts.get(key, 0) + 1
        if key == "" and attempts[key] == 1:
            return "не JSON"  # the first case is repaired
        return json.dumps(answers.get(key, GOOD), ensure_ascii=False)

    fake_openai.responder = respond
    code, out, err = await relove(
        "conversation",
        "eval",
        str(EXAMPLES / "diagnostic_eval.yaml"),
        "--scenarios",
        str(EXAMPLES / "scenarios.yaml"),
        RELOVE_LLM_BASE_URL=fake_openai.base_url,
        RELOVE_LLM_MODEL="m",
        RELOVE_LLM_RETRIES="0",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "case restless_at_work: ok (after repair)"
    assert lines[1].startswith("  invalid answer: the answer is not valid JSON")
    assert "case afraid_to_leave: ok" in lines
    assert "case back_home: wrong" in lines
    assert '  journey_stage: expected "Возвращение с эликсиром", got "Обычный мир"' in lines
    assert lines[-2:] == ["journey_stage: 2/3 (67%)", "valid results: 3/3"]
    schema = fake_openai.requests[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["journey_stage"]["enum"] == STAGES

    bad = tmp_path / "e.yaml"
    bad.write_text("mode: nope\ncases: [{id: a, dialogue: [{user: x}], expect: {a: 1}}]\n")
    code, out, err = await relove(
        "conversation",
        "eval",
        str(bad),
        "--scenarios",
        str(EXAMPLES / "scenarios.yaml"),
        RELOVE_LLM_BASE_URL=fake_openai.base_url,
        RELOVE_LLM_MODEL="m",
    )
    assert code == 1 and "no AI mode 'nope' (known: diagnostic, natasha)" in err
    assert "Traceback" not in err


def test_numbers_past_64_bits_in_a_result_are_refused_not_a_crash():
    # a model's answer is data: 10**400 once raised OverflowError out of the check (isfinite),
    # and a 5,000-digit number ValueError out of the JSON parser
    from relove.conversation.ai_sessions.modes import AIMode
    from relove.conversation.ai_sessions.result import ResultInvalid, validate_result

    mode = AIMode.model_validate({"id": "m", "goal": "g", "result": {
        "score": {"type": "number"}, "count": {"type": "integer", "required": False}}})
    assert validate_result(mode, '{"score": 2.5, "count": 3}', [])[0] == {"score": 2.5, "count": 3}
    for answer, reason in (
        (f'{{"score": {10**400}}}', "score: is outside the signed 64-bit range"),
        (f'{{"score": 1, "count": {2**63}}}', "count: is outside the signed 64-bit range"),
        ('{"score": 1e400}', "score: expected a number"),
        (f'{{"score": {"9" * 5000}}}', "the answer is not valid JSON"),
    ):
        with pytest.raises(ResultInvalid) as e:
            validate_result(mode, answer, [])
        assert str(e.value).startswith(reason), str(e.value)
