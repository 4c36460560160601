"""The user card: typed marker edits through the marker service, and live chat through the
sandbox Bot API (the operator writes as the bot; the companion pauses for that user)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from relove.conversation.handoff import handoff_until
from relove.db.models import User
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.telegram.client import BotApiClient
from relove.telegram.ratelimit import MemoryRateLimitStorage, RateLimiter
from relove.web.telegram import ConsoleBot
from tests.web.conftest import OPERATOR_ID, Browser, ConsoleHarness, MakeConsole, add_users


async def _markers(console: ConsoleHarness, user_id: int) -> dict:
    async with console.sessions() as s:
        return dict((await s.execute(select(User.markers).where(User.id == user_id))).scalar_one())


async def test_markers_editor_typed_values(operator: Browser, console: ConsoleHarness) -> None:
    await add_users(console.sessions, [{"id": 5, "first_name": "Ира", "markers": {"a": 1}}])
    cases = [("city", "string", "Москва", "Москва"), ("score", "number", "42", 42),
             ("ratio", "number", "0,5", 0.5), ("VIP", "boolean", "да", True),
             ("interests", "list", "йога\nтанцы", ["йога", "танцы"]),
             ("profile", "json", '{"age": 30}', {"age": 30}), ("note", "string", "42", "42")]
    for key, kind, raw, _ in cases:
        r = await operator.post_form("/users/5/markers", {"key": key, "kind": kind, "value": raw})
        assert r.status_code == 200, r.text
        assert f'data-key="{key}"' in r.text
    markers = await _markers(console, 5)
    for key, _, _, expected in cases:
        assert markers[key] == expected
    assert markers["a"] == 1
    r = await operator.post_form("/users/5/markers/unset", {"key": "city"})
    assert r.status_code == 200 and 'data-key="city"' not in r.text
    assert "city" not in await _markers(console, 5)


@pytest.mark.parametrize("key,kind,value,message", [
    ("a..b", "string", "x", "must not be empty"),
    ("123", "string", "x", "all digits"),
    ("n", "number", "много", "not a number"),
    ("b", "boolean", "может быть", "not true or false"),
    ("j", "json", "{bad", "not valid JSON"),
])
async def test_bad_marker_input_is_an_inline_error(operator: Browser, console: ConsoleHarness,
                                                   key: str, kind: str, value: str,
                                                   message: str) -> None:
    await add_users(console.sessions, [{"id": 6, "markers": {"keep": True}}])
    r = await operator.post_form("/users/6/markers", {"key": key, "kind": kind, "value": value})
    assert r.status_code == 422 and message in r.text and 'role="alert"' in r.text
    assert await _markers(console, 6) == {"keep": True}


async def test_marker_edit_of_an_unknown_user_is_404(operator: Browser) -> None:
    r = await operator.post_form("/users/77/markers", {"key": "a", "value": "b"})
    assert r.status_code == 404


@pytest.fixture
async def live_console(make_console: MakeConsole, sandbox: Sandbox,
                       sandbox_client: SandboxClient) -> tuple[ConsoleHarness, SandboxClient]:
    assert sandbox.url
    bot = ConsoleBot(BotApiClient(DEFAULT_TOKEN, sandbox.url),
                     RateLimiter(MemoryRateLimitStorage()))
    console = await make_console(bot=bot, bot_token=DEFAULT_TOKEN, telegram_api_url=sandbox.url,
                                 handoff_minutes=15, console_chat_per_minute=3)
    return console, sandbox_client


async def test_live_chat_reaches_the_user_and_pauses_the_companion(
        live_console: tuple[ConsoleHarness, SandboxClient]) -> None:
    console, client = live_console
    person = await client.create_user("Маша", started=True)
    await add_users(console.sessions, [{"id": person["id"], "first_name": "Маша"}])
    operator = await console.login(OPERATOR_ID)
    r = await operator.post_form(f"/users/{person['id']}/message",
                                 {"text": "Здравствуйте! <b>не разметка</b>"})
    assert r.status_code == 200, r.text
    messages = await client.messages(person["id"], from_bot=True)
    assert messages[-1]["text"] == "Здравствуйте! <b>не разметка</b>"  # sent as text
    assert "не разметка" in r.text and "&lt;b&gt;" in r.text  # the conversation shows it
    async with console.sessions() as s:
        user = await s.get(User, person["id"])
        assert user is not None
        until = handoff_until(user.context)
        turn = user.context["turns"][-1]
    assert until == console.clock() + timedelta(minutes=15)
    assert turn["by"] == f"admin:{OPERATOR_ID}" and turn["role"] == "assistant"
    # the per-operator rate limit: 3 a minute
    for _ in range(2):
        assert (await operator.post_form(f"/users/{person['id']}/message",
                                         {"text": "ещё"})).status_code == 200
    limited = await operator.post_form(f"/users/{person['id']}/message", {"text": "ещё"})
    assert limited.status_code == 422 and "3" in limited.text
    assert len(await client.messages(person["id"], from_bot=True)) == 3


async def test_live_chat_to_someone_who_blocked_the_bot(
        live_console: tuple[ConsoleHarness, SandboxClient]) -> None:
    console, client = live_console
    person = await client.create_user("Олег", started=True)
    await client.block(person["id"])
    await add_users(console.sessions, [{"id": person["id"], "first_name": "Олег"}])
    operator = await console.login(OPERATOR_ID)
    r = await operator.post_form(f"/users/{person['id']}/message", {"text": "привет"})
    assert r.status_code == 422 and "not delivered" in r.text
    async with console.sessions() as s:
        user = await s.get(User, person["id"])
        assert user is not None and "handoff_until" not in user.context


async def test_live_chat_without_a_bot(operator: Browser, console: ConsoleHarness) -> None:
    await add_users(console.sessions, [{"id": 8, "first_name": "Nobody"}])
    r = await operator.post_form("/users/8/message", {"text": "hi"})
    assert r.status_code == 422 and "RELOVE_BOT_TOKEN" in r.text


def test_handoff_reads_only_aware_timestamps() -> None:
    assert handoff_until({"handoff_until": "2026-12-01T12:00:00+00:00"}) == datetime.fromisoformat(
        "2026-12-01T12:00:00+00:00")
    assert handoff_until({"handoff_until": "2026-12-01T12:00:00"}) is None
    assert handoff_until({"handoff_until": 5}) is None
    assert handoff_until({}) is None
