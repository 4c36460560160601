"""The companion against a local OpenAI-compatible server (the real ``openai`` client runs):
prompt contents, rolling summaries, failures, budgets, concurrency."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from relove.conversation.base import ChatMessage, LLMError
from relove.conversation.budget import LLMBudget
from relove.conversation.openai_provider import OpenAIProvider
from relove.conversation.prompt import SUMMARY_SYSTEM
from relove.conversation.service import ConversationConfig, ConversationService, ReplyKind
from relove.db.models import Gender, User
from relove.users.service import get_user_documents, set_values
from tests.conversation.fake_openai import Behaviour, FakeOpenAI

PERSONA = "Ты — собеседник сообщества reLove (тестовая персона)."


def make_service(
    fake: FakeOpenAI,
    session_factory,
    *,
    timeout: float = 5.0,
    retries: int = 0,
    summary_every: int = 3,
    history: int = 40,
    budget: LLMBudget | None = None,
) -> ConversationService:
    provider = OpenAIProvider(
        model="fake-model", base_url=fake.base_url, api_key="k", timeout=timeout, retries=retries
    )
    return ConversationService(
        provider,
        session_factory,
        budget or LLMBudget(rate=0, daily=0, concurrency=8),
        PERSONA,
        ConversationConfig(history_turns=history, summary_every=summary_every, timeout=timeout),
    )


async def make_user(session_factory, uid: int = 1, **fields) -> User:
    async with session_factory() as s:
        user = User(id=uid, first_name="Анна", **fields)
        s.add(user)
        await s.commit()
        await s.refresh(user)
        s.expunge(user)
    return user


async def context_of(session_factory, uid: int = 1) -> dict:
    async with session_factory() as s:
        return (await get_user_documents(s, uid))["context"]


def is_summary(body: dict) -> bool:
    return body["messages"][0]["content"] == SUMMARY_SYSTEM


def chat_requests(fake: FakeOpenAI) -> list[dict]:
    return [r for r in fake.requests if not is_summary(r)]


def summary_requests(fake: FakeOpenAI) -> list[dict]:
    return [r for r in fake.requests if is_summary(r)]


def cumulative_summary(body: dict) -> str:
    """A fake summariser that keeps the previous summary and appends the new user lines."""
    if not is_summary(body):
        return "Ответ: " + body["messages"][-1]["content"]
    text = body["messages"][1]["content"]
    previous = text.split("Прежняя сводка:\n", 1)[1].split("\n\nНовые реплики:", 1)[0]
    lines = re.findall(r"^Собеседник: (.*)$", text, re.M)
    base = "" if previous == "(пока нет)" else previous
    return (base + " | " if base else "") + " | ".join(lines)


async def test_prompt_carries_persona_markers_summary_context_and_turns(
    fake_openai, session_factory
):
    await make_user(
        session_factory,
        gender=Gender.female,
        markers={"city": "Казань", "interests": ["meditation"]},
        context={"summary": "Любит утренние практики.", "relove_context": "поток «Весна»"},
    )
    user = await make_user_obj(session_factory)
    service = make_service(fake_openai, session_factory, summary_every=100)
    fake_openai.script(Behaviour(text="Здравствуйте, **Анна**!"))
    reply = await service.reply(user, "Привет! Что посоветуешь?")
    assert reply.kind is ReplyKind.answer and reply.text == "Здравствуйте, **Анна**!"
    body = fake_openai.requests[-1]
    assert body["model"] == "fake-model"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "system", "user"]
    assert body["messages"][0]["content"] == PERSONA
    profile = body["messages"][1]["content"]
    assert "Казань" in profile and "meditation" in profile
    assert "Любит утренние практики." in profile
    assert "поток «Весна»" in profile
    assert "женский" in profile and "Анна" in profile
    assert body["messages"][2]["content"] == "Привет! Что посоветуешь?"

    fake_openai.script(Behaviour(text="Второй ответ"))
    await service.reply(user, "А ещё?")
    body = fake_openai.requests[-1]
    assert [(m["role"], m["content"]) for m in body["messages"][2:]] == [
        ("user", "Привет! Что посоветуешь?"),
        ("assistant", "Здравствуйте, **Анна**!"),
        ("user", "А ещё?"),
    ]
    await service.close()


async def make_user_obj(session_factory, uid: int = 1) -> User:
    async with session_factory() as s:
        user = await s.get(User, uid)
        assert user is not None
        s.expunge(user)
        return user


async def test_history_window_is_bounded(fake_openai, session_factory):
    user = await make_user(session_factory)
    service = make_service(fake_openai, session_factory, history=4, summary_every=100)
    for i in range(6):
        await service.reply(user, f"сообщение {i}")
    body = fake_openai.requests[-1]
    turns = [m["content"] for m in body["messages"][2:]]
    assert len(turns) == 4
    assert turns[-1] == "сообщение 5"
    context = await context_of(session_factory)
    assert len(context["turns"]) == 4
    assert context["user_messages"] == 6
    await service.close()


async def test_summary_updates_every_n_messages(fake_openai, session_factory):
    user = await make_user(session_factory, context={"keep": "me"})
    fake_openai.responder = cumulative_summary
    service = make_service(fake_openai, session_factory, summary_every=3)
    for i in range(2):
        await service.reply(user, f"м{i}")
    await service.drain()
    assert "summary" not in await context_of(session_factory)
    assert summary_requests(fake_openai) == []

    await service.reply(user, "м2")
    await service.drain()
    context = await context_of(session_factory)
    assert context["summary"] == "м0 | м1 | м2"
    assert context["summary_count"] == 3
    assert context["keep"] == "me"  # the merge never drops other keys
    first_stamp = context["summary_updated_at"]

    for i in range(3, 6):
        await service.reply(user, f"м{i}")
    await service.drain()
    context = await context_of(session_factory)
    assert context["summary"] == "м0 | м1 | м2 | м3 | м4 | м5"
    assert context["summary_updated_at"] >= first_stamp
    # the second summary prompt held the previous summary and only the new turns
    prompt = summary_requests(fake_openai)[-1]["messages"][1]["content"]
    assert "м0 | м1 | м2" in prompt and "Собеседник: м2" not in prompt
    # and the next chat prompt carries the summary
    await service.reply(user, "ещё")
    assert "м0 | м1 | м2 | м3 | м4 | м5" in chat_requests(fake_openai)[-1]["messages"][1]["content"]
    await service.close()


async def test_summary_failure_keeps_the_old_summary(fake_openai, session_factory):
    user = await make_user(session_factory, context={"summary": "старая", "summary_count": 0})
    service = make_service(fake_openai, session_factory, summary_every=1)
    fake_openai.script(Behaviour(text="ответ"), Behaviour(status=500))
    reply = await service.reply(user, "привет")
    await service.drain()
    assert reply.kind is ReplyKind.answer
    context = await context_of(session_factory)
    assert context["summary"] == "старая"
    # the next message retries, and succeeds
    fake_openai.script(Behaviour(text="ответ"), Behaviour(text="новая"))
    await service.reply(user, "ещё")
    await service.drain()
    assert (await context_of(session_factory))["summary"] == "новая"
    await service.close()


async def test_concurrent_messages_never_lose_a_summary(fake_openai, session_factory):
    """Twenty messages at once, and a second service (another process) summarising too:
    every message ends up in the final cumulative summary, each summary write applied once."""
    user = await make_user(session_factory)
    fake_openai.responder = cumulative_summary
    fake_openai.delay = 0.02
    a = make_service(fake_openai, session_factory, summary_every=2, history=60)
    b = make_service(fake_openai, session_factory, summary_every=2, history=60)
    replies = await asyncio.gather(
        *((a if i % 2 else b).reply(user, f"m{i:02d}") for i in range(20))
    )
    assert all(r.kind is ReplyKind.answer for r in replies)
    await asyncio.gather(a.drain(), b.drain())
    # a final pass picks up anything that arrived during the last update
    a.schedule_summary(user.id)
    await a.drain()
    context = await context_of(session_factory)
    assert context["user_messages"] == 20
    done = context["summary_count"]
    assert 20 - done < 2  # up to date: fewer than summary_every messages wait
    parts = context["summary"].split(" | ")
    assert len(parts) == len(set(parts)) == done  # each summarised message exactly once
    waiting = [t["text"] for t in context["turns"] if t["role"] == "user" and t["n"] > done]
    # nothing lost: every message is in the summary or still waiting for the next one
    assert sorted(parts + waiting) == [f"m{i:02d}" for i in range(20)]
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    "behaviour",
    [Behaviour(status=500), Behaviour(status=503), Behaviour(empty=True), Behaviour(invalid=True),
     Behaviour(text="   ")],
    ids=["500", "503", "empty", "invalid-body", "blank"],
)
async def test_failures_give_the_fallback(fake_openai, session_factory, behaviour, caplog):
    user = await make_user(session_factory)
    service = make_service(fake_openai, session_factory, retries=0)
    fake_openai.script(behaviour)
    reply = await service.reply(user, "привет")
    assert reply.kind is ReplyKind.fallback
    assert any("fallback" in r.getMessage() for r in caplog.records)
    context = await context_of(session_factory)
    assert [t["role"] for t in context["turns"]] == ["user"]  # no assistant turn invented
    await service.close()


async def test_timeout_gives_the_fallback_within_the_timeout(fake_openai, session_factory):
    user = await make_user(session_factory)
    # retries would double the wait; the overall deadline still holds
    service = make_service(fake_openai, session_factory, timeout=0.5, retries=2)
    fake_openai.script(*(Behaviour(text="поздно", delay=3) for _ in range(3)))
    started = time.monotonic()
    reply = await service.reply(user, "привет")
    elapsed = time.monotonic() - started
    assert reply.kind is ReplyKind.fallback
    assert elapsed < 1.0
    await service.close()


async def test_rate_and_daily_budget_hold_without_calls(fake_openai, session_factory):
    user = await make_user(session_factory)
    service = make_service(
        fake_openai, session_factory, budget=LLMBudget(rate=3, rate_period=60, daily=100)
    )
    kinds = [(await service.reply(user, f"m{i}")).kind for i in range(5)]
    assert kinds == [ReplyKind.answer] * 3 + [ReplyKind.rate] * 2
    assert len(chat_requests(fake_openai)) == 3  # refused messages made no call
    await service.close()

    other = await make_user(session_factory, uid=2)
    service = make_service(fake_openai, session_factory, budget=LLMBudget(rate=0, daily=2))
    kinds = [(await service.reply(other, f"m{i}")).kind for i in range(4)]
    assert kinds == [ReplyKind.answer] * 2 + [ReplyKind.daily] * 2
    await service.close()


async def test_global_concurrency_cap(fake_openai, session_factory):
    users = [await make_user(session_factory, uid=i) for i in range(1, 9)]
    fake_openai.gate = asyncio.Event()  # the model answers nobody until the others gave up
    service = make_service(
        fake_openai,
        session_factory,
        budget=LLMBudget(rate=0, daily=0, concurrency=3, queue_timeout=0.1),
        summary_every=100,
    )
    tasks = [asyncio.create_task(service.reply(u, "привет")) for u in users]
    for _ in range(6000):  # the five beyond the cap are refused after the queue timeout
        if sum(t.done() for t in tasks) >= 5:
            break
        await asyncio.sleep(0.01)
    fake_openai.gate.set()
    replies = await asyncio.gather(*tasks)
    kinds = [r.kind for r in replies]
    assert fake_openai.max_in_flight == 3
    assert kinds.count(ReplyKind.answer) == 3
    assert kinds.count(ReplyKind.busy) == 5
    await service.close()


async def test_provider_reports_errors_as_llm_error(fake_openai):
    provider = OpenAIProvider(model="m", base_url=fake_openai.base_url, timeout=2, retries=0)
    fake_openai.script(Behaviour(status=502))
    with pytest.raises(LLMError, match="HTTP 502"):
        await provider.complete([ChatMessage("user", "x")])
    fake_openai.script(Behaviour(text="  да  "))
    assert await provider.complete([ChatMessage("user", "x")], max_tokens=5) == "да"
    assert fake_openai.requests[-1]["max_tokens"] == 5
    await provider.close()


async def test_unreachable_server_is_a_fallback(session_factory):
    user = await make_user(session_factory)
    fake = FakeOpenAI()
    fake.port = 9  # nothing listens there
    service = make_service(fake, session_factory, timeout=2)
    reply = await service.reply(user, "привет")
    assert reply.kind is ReplyKind.fallback
    await service.close()


async def test_summary_write_never_overwrites_concurrent_context_writes(
    fake_openai, session_factory
):
    user = await make_user(session_factory)
    fake_openai.responder = cumulative_summary
    fake_openai.delay = 0.05
    service = make_service(fake_openai, session_factory, summary_every=1)
    await service.reply(user, "раз")

    async def other_writer() -> None:
        for i in range(10):
            async with session_factory() as s:
                await set_values(s, user.id, {f"other.k{i}": i}, doc="context")
                await s.commit()
            await asyncio.sleep(0.005)

    await asyncio.gather(service.drain(), other_writer())
    context = await context_of(session_factory)
    assert context["summary"] == "раз"
    assert context["other"] == {f"k{i}": i for i in range(10)}
    assert json.dumps(context)  # still a valid document
    await service.close()


async def test_a_full_context_gives_the_fallback_not_a_crash(fake_openai, session_factory):
    user = await make_user(session_factory, context={"big": "я" * 130_000})  # ~256 KiB
    service = make_service(fake_openai, session_factory)
    reply = await service.reply(user, "привет " * 400)
    assert reply.kind is ReplyKind.fallback
    assert fake_openai.requests == []
    await service.close()
