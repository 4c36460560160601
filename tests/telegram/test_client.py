"""The lean Bot API client against the sandbox's real HTTP answers: one classification of what
became of a message (sent, blocked, failed, 429 with retry_after, 5xx, network errors), and one
encoding shared with the bot's aiogram path.

Only an error after which nothing can have been sent is ``transient`` (retried); anything that
may follow a delivery is ``unknown`` (never resent silently)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from relove.bot.factory import close_bot, create_bot
from relove.config import Settings
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.telegram.bot import send_message
from relove.telegram.client import BotApiClient
from relove.telegram.message import Button, MediaKind, OutgoingMessage
from relove.telegram.outcomes import Outcome

TEXT = OutgoingMessage("Привет, <b>Аня</b>!")


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[BotApiClient]:
    client = BotApiClient(DEFAULT_TOKEN, sandbox.url)
    yield client
    await client.close()


@pytest.fixture
async def bot(sandbox: Sandbox) -> AsyncIterator[Bot]:
    b = create_bot(Settings(bot_token=DEFAULT_TOKEN, telegram_api_url=sandbox.url,
                            _env_file=None))  # type: ignore[call-arg]
    yield b
    await close_bot(b)


async def test_sent_blocked_and_failed(
    sandbox_client: SandboxClient, api: BotApiClient
) -> None:
    ok = await sandbox_client.create_user("Аня", id=61_001, started=True)
    blocked = await sandbox_client.create_user("Боря", id=61_002, started=True)
    gone = await sandbox_client.create_user("Вера", id=61_003, started=True)
    never = await sandbox_client.create_user("Гена", id=61_004)
    await sandbox_client.block(blocked["id"])
    await sandbox_client.deactivate(gone["id"])

    sent = await api.send(ok["id"], TEXT)
    assert sent.outcome is Outcome.sent and sent.message_id is not None
    for uid in (blocked["id"], gone["id"], never["id"]):
        result = await api.send(uid, TEXT)
        assert result.outcome is Outcome.blocked and result.error
        assert result.error.startswith("Forbidden")
    missing = await api.send(61_999, TEXT)
    assert missing.outcome is Outcome.failed and missing.error == "Bad Request: chat not found"
    bad_html = await api.send(ok["id"], OutgoingMessage("<b>unclosed"))
    assert bad_html.outcome is Outcome.failed
    assert bad_html.error and "can't parse entities" in bad_html.error


async def test_photo_buttons_and_paid_reach_the_chat(
    sandbox_client: SandboxClient, api: BotApiClient
) -> None:
    user = await sandbox_client.create_user("Аня", id=61_010, started=True)
    message = OutgoingMessage(
        "Афиша <i>субботы</i>", MediaKind.photo, "https://example.org/poster.jpg",
        ((Button("Записаться", "https://example.org/signup"),),),
    )
    result = await api.send(user["id"], message, paid=True)
    assert result.outcome is Outcome.sent
    [got] = await sandbox_client.messages(user["id"], from_bot=True)
    assert got["caption"] == "Афиша субботы" and got["photo"] and got["paid"] is True
    assert got["reply_markup"] == {"inline_keyboard": [
        [{"text": "Записаться", "url": "https://example.org/signup"}]]}


async def test_the_bot_sends_the_same_encoding(
    sandbox_client: SandboxClient, api: BotApiClient, bot: Bot
) -> None:
    """A broadcast preview (aiogram, as a reply) and the broadcast itself (lean client) are
    one message to the recipient."""
    by_bot = await sandbox_client.create_user("Аня", id=61_011, started=True)
    by_client = await sandbox_client.create_user("Боря", id=61_012, started=True)
    for message in (
        TEXT,
        OutgoingMessage("Док", MediaKind.document, "https://example.org/a.pdf",
                        ((Button("a", "https://a.example"), Button("b", "tg://resolve?x=1")),)),
    ):
        await send_message(bot, by_bot["id"], message)
        assert (await api.send(by_client["id"], message)).outcome is Outcome.sent
    keys = ("text", "caption", "entities", "caption_entities", "reply_markup")

    async def seen(uid: int) -> list[dict[str, object]]:
        return [{**{k: m.get(k) for k in keys}, "file": (m.get("document") or {}).get("file_name")}
                for m in await sandbox_client.messages(uid, from_bot=True)]

    got = await seen(by_bot["id"])
    assert len(got) == 2 and got[0]["entities"] and got[1]["reply_markup"]
    assert got[1]["file"] == "a.pdf"
    assert got == await seen(by_client["id"])


async def test_429_and_5xx(sandbox_client: SandboxClient, api: BotApiClient) -> None:
    ids = [61_020 + i for i in range(4)]
    await sandbox_client.create_users([{"id": i, "first_name": "U", "started": True} for i in ids])
    await sandbox_client.set_limits(rate=1, burst=1)
    assert (await api.send(ids[0], TEXT)).outcome is Outcome.sent
    throttled = await api.send(ids[1], TEXT)
    assert throttled.outcome is Outcome.retry_after
    assert throttled.retry_after and throttled.retry_after >= 1
    assert throttled.error and throttled.error.startswith("Too Many Requests")
    await sandbox_client.set_limits(enabled=False, fault_5xx=1.0)
    for uid in ids[2:]:  # a random 500 or 502 each time: either may follow a delivery
        result = await api.send(uid, TEXT)
        assert result.outcome is Outcome.unknown
        assert result.error in {"Internal Server Error", "Bad Gateway"}


async def test_a_connection_dropped_after_delivery_is_unknown(
    sandbox_client: SandboxClient, api: BotApiClient
) -> None:
    user = await sandbox_client.create_user("Аня", id=61_030, started=True)
    await sandbox_client.set_limits(enabled=False, fault_drop_after=1.0)
    result = await api.send(user["id"], TEXT)
    assert result.outcome is Outcome.unknown
    # the message did arrive: resending it would have been a duplicate
    assert len(await sandbox_client.messages(user["id"], from_bot=True)) == 1


async def test_a_connection_dropped_before_the_request_is_unknown_too(
    sandbox_client: SandboxClient, api: BotApiClient
) -> None:
    """The client can't tell a drop before the method ran from one after it."""
    user = await sandbox_client.create_user("Аня", id=61_031, started=True)
    await sandbox_client.set_limits(enabled=False, fault_drop=1.0)
    assert (await api.send(user["id"], TEXT)).outcome is Outcome.unknown


async def test_refused_connections_are_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    client = BotApiClient(DEFAULT_TOKEN, f"http://127.0.0.1:{port}")
    try:
        result = await client.send(1, TEXT)
    finally:
        await client.close()
    assert result.outcome is Outcome.transient
    assert result.error and result.error.startswith("ClientConnectorError")
