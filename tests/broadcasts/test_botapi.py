"""The lean Bot API send gives the same outcomes as the aiogram send, against the sandbox's
real HTTP answers (sent, blocked, failed, 429 with retry_after, 5xx, network errors).

Only an error after which nothing can have been sent is ``transient`` (retried); anything that
may follow a delivery is ``unknown`` (never resent silently)."""

from __future__ import annotations

import socket

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from relove.broadcasts.base import Outcome, SendResult
from relove.broadcasts.botapi import BotApiClient, HttpSend
from relove.broadcasts.content import Button, Recipient, RenderedMessage
from relove.broadcasts.models import MediaKind
from relove.broadcasts.telegram import TelegramSend
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox

TEXT = RenderedMessage("Привет, <b>Аня</b>!", None, None, ())


async def _both(bot: Bot, api: BotApiClient, chat_id: int, message: RenderedMessage = TEXT,
                *, paid: bool = False) -> tuple[SendResult, SendResult]:
    recipient = Recipient(id=chat_id)
    lean = await HttpSend(api, paid=paid)(recipient, message)
    reference = await TelegramSend(bot, paid=paid)(recipient, message)
    return lean, reference


def _same(lean: SendResult, reference: SendResult, outcome: Outcome) -> None:
    assert lean.outcome is reference.outcome is outcome
    assert lean.error and reference.error
    # aiogram wraps a 429's description in its own sentence; the lean send keeps Telegram's
    assert reference.error.endswith(lean.error)
    assert lean.retry_after == reference.retry_after


async def test_sent_blocked_and_failed_match_aiogram(
    sandbox: Sandbox, sandbox_client: SandboxClient, bot: Bot, api: BotApiClient
) -> None:
    ok = await sandbox_client.create_user("Аня", id=61_001, started=True)
    blocked = await sandbox_client.create_user("Боря", id=61_002, started=True)
    gone = await sandbox_client.create_user("Вера", id=61_003, started=True)
    never = await sandbox_client.create_user("Гена", id=61_004)
    await sandbox_client.block(blocked["id"])
    await sandbox_client.deactivate(gone["id"])

    lean, reference = await _both(bot, api, ok["id"])
    assert lean.outcome is reference.outcome is Outcome.sent
    assert lean.message_id is not None and reference.message_id == lean.message_id + 1
    for uid in (blocked["id"], gone["id"], never["id"]):
        _same(*await _both(bot, api, uid), Outcome.blocked)
    _same(*await _both(bot, api, 61_999), Outcome.failed)  # chat not found
    bad_html = RenderedMessage("<b>unclosed", None, None, ())
    lean, reference = await _both(bot, api, ok["id"], bad_html)
    _same(lean, reference, Outcome.failed)
    assert lean.error and "can't parse entities" in lean.error


async def test_photo_buttons_and_paid_reach_the_chat(
    sandbox: Sandbox, sandbox_client: SandboxClient, api: BotApiClient
) -> None:
    user = await sandbox_client.create_user("Аня", id=61_010, started=True)
    message = RenderedMessage(
        "Афиша <i>субботы</i>", MediaKind.photo, "https://example.org/poster.jpg",
        ((Button("Записаться", "https://example.org/signup"),),),
    )
    result = await HttpSend(api, paid=True)(Recipient(id=user["id"]), message)
    assert result.outcome is Outcome.sent
    [got] = await sandbox_client.messages(user["id"], from_bot=True)
    assert got["caption"] == "Афиша субботы" and got["photo"] and got["paid"] is True
    assert got["reply_markup"] == {"inline_keyboard": [
        [{"text": "Записаться", "url": "https://example.org/signup"}]]}


async def test_429_and_5xx_match_aiogram(
    sandbox: Sandbox, sandbox_client: SandboxClient, bot: Bot, api: BotApiClient
) -> None:
    ids = [61_020 + i for i in range(4)]
    await sandbox_client.create_users([{"id": i, "first_name": "U", "started": True} for i in ids])
    await sandbox_client.set_limits(rate=1, burst=1)
    assert (await HttpSend(api)(Recipient(id=ids[0]), TEXT)).outcome is Outcome.sent
    lean, reference = await _both(bot, api, ids[1])
    _same(lean, reference, Outcome.retry_after)
    assert lean.retry_after and lean.retry_after >= 1
    await sandbox_client.set_limits(enabled=False, fault_5xx=1.0)
    for uid in ids[2:]:  # a random 500 or 502 each time: either may follow a delivery
        lean, reference = await _both(bot, api, uid)
        assert lean.outcome is reference.outcome is Outcome.unknown
        assert {lean.error, reference.error} <= {"Internal Server Error", "Bad Gateway"}


async def test_a_connection_dropped_after_delivery_is_unknown_on_both_paths(
    sandbox: Sandbox, sandbox_client: SandboxClient, bot: Bot, api: BotApiClient
) -> None:
    user = await sandbox_client.create_user("Аня", id=61_030, started=True)
    await sandbox_client.set_limits(enabled=False, fault_drop_after=1.0)
    lean, reference = await _both(bot, api, user["id"])
    assert lean.outcome is reference.outcome is Outcome.unknown
    assert lean.error == reference.error
    # both messages did arrive: resending either would have been a duplicate
    assert len(await sandbox_client.messages(user["id"], from_bot=True)) == 2


async def test_a_connection_dropped_before_the_request_is_unknown_too(
    sandbox: Sandbox, sandbox_client: SandboxClient, bot: Bot, api: BotApiClient
) -> None:
    """The client can't tell a drop before the method ran from one after it."""
    user = await sandbox_client.create_user("Аня", id=61_031, started=True)
    await sandbox_client.set_limits(enabled=False, fault_drop=1.0)
    lean, reference = await _both(bot, api, user["id"])
    assert lean.outcome is reference.outcome is Outcome.unknown


async def test_refused_connections_are_transient_on_both_paths() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    client = BotApiClient(DEFAULT_TOKEN, f"http://127.0.0.1:{port}")
    bot = Bot(DEFAULT_TOKEN, session=AiohttpSession(
        api=TelegramAPIServer.from_base(f"http://127.0.0.1:{port}")))
    try:
        lean, reference = await _both(bot, client, 1)
    finally:
        await client.close()
        await bot.session.close()
    assert lean.outcome is reference.outcome is Outcome.transient
    assert lean.error == reference.error and lean.error.startswith("ClientConnectorError")


def test_the_worker_loads_no_aiogram() -> None:
    """`relove worker` sends with the lean client: importing aiogram would cost it ~120 MB."""
    import subprocess
    import sys

    code = (
        "import sys, relove.cli, relove.bot.texts, relove.broadcasts.botapi, "
        "relove.broadcasts.notify, relove.broadcasts.ratelimit, relove.broadcasts.runner; "
        "print(sorted(m for m in ('aiogram', 'openai', 'pymorphy3', 'alembic') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
