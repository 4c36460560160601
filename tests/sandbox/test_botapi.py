"""The sandbox's Bot API, driven by aiogram over real HTTP (and by raw requests for the wire)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BotCommand, BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import web

from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox

TOKEN = DEFAULT_TOKEN


@pytest.fixture
async def bot(sandbox: Sandbox) -> AsyncIterator[Bot]:
    assert sandbox.url
    session = AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url))
    b = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield b
    await b.session.close()


async def _started(client: SandboxClient, name: str = "Аня", **fields: object) -> int:
    user = await client.create_user(name, started=True, **fields)
    return int(user["id"])


async def test_wire_formats_json_urlencoded_query(sandbox: Sandbox,
                                                  sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    base = f"{sandbox.url}/bot{TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/getMe") as r:
            me = await r.json()
        assert me == {"ok": True, "result": me["result"]} and me["result"]["is_bot"] is True
        async with http.post(f"{base}/sendMessage", json={"chat_id": uid, "text": "json"}) as r:
            assert (await r.json())["result"]["text"] == "json"
        form = {"chat_id": str(uid), "text": "form"}
        async with http.post(f"{base}/sendMessage", data=form) as r:
            assert (await r.json())["result"]["chat"]["id"] == uid
        async with http.get(f"{base}/sendmessage", params={"chat_id": uid, "text": "query"}) as r:
            assert r.status == 200  # method names are case-insensitive
        async with http.post(f"{base}/noSuchMethod") as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{sandbox.url}/botnot-a-token/getMe") as r:
            assert r.status == 404


async def test_send_message_validation(bot: Bot, sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    with pytest.raises(TelegramBadRequest) as bad:
        await bot.send_message(uid, "<b>unclosed")
    assert bad.value.message == ("Bad Request: can't parse entities: Can't find end tag "
                                 'corresponding to start tag "b"')
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(uid, "я" * 4097)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(uid, "x", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text="long", callback_data="x" * 65)]]))
    ok = await bot.send_message(uid, "я" * 4096, parse_mode=None)
    assert len(ok.text or "") == 4096
    nothing = [m for m in await sandbox_client.messages(uid) if m["text"] != ok.text]
    assert nothing == []  # refused calls store nothing


async def test_forbidden_and_unknown_chats(bot: Bot, sandbox_client: SandboxClient) -> None:
    stranger = (await sandbox_client.create_user("Stranger"))["id"]
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(stranger, "hi")
    blocker = await _started(sandbox_client, "Blocker")
    await sandbox_client.block(blocker)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(blocker, "hi")
    gone = await _started(sandbox_client, "Gone")
    await sandbox_client.deactivate(gone)
    with pytest.raises(TelegramForbiddenError, match="user is deactivated"):
        await bot.send_message(gone, "hi")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(123, "hi")
    updates = await bot.get_updates(timeout=0)
    member = updates[-1].my_chat_member
    assert member is not None and member.chat.id == blocker
    assert (member.old_chat_member.status, member.new_chat_member.status) == ("member", "kicked")
    stats = await sandbox_client.stats()
    assert stats["forbidden"] == 3 and stats["statuses"]["400"] == 1


async def test_send_loop_above_limits_gets_retry_after(bot: Bot,
                                                       sandbox_client: SandboxClient) -> None:
    """Per chat: the burst goes through, then 429 with retry_after, raised by aiogram."""
    uid = await _started(sandbox_client)
    sent, retry = 0, None
    for i in range(10):
        try:
            await bot.send_message(uid, f"n{i}")
            sent += 1
        except TelegramRetryAfter as e:
            retry = e.retry_after
            break
    assert sent == 3 and retry == 1
    await asyncio.sleep(1.05)
    await bot.send_message(uid, "after waiting")  # a token came back


async def test_global_limit_and_paid_broadcast(bot: Bot, sandbox_client: SandboxClient) -> None:
    users = await sandbox_client.create_users(
        [{"first_name": f"U{i}", "started": True} for i in range(80)])
    ids = [u["id"] for u in users]
    # The default bucket (30, refilled at 30/s) with a refill too slow to matter however long
    # the 40 concurrent calls take on a loaded machine: exactly the burst gets through.
    await sandbox_client.set_limits(rate=0.01, burst=30)
    results = await asyncio.gather(*(bot.send_message(uid, "free") for uid in ids[:40]),
                                   return_exceptions=True)
    refused = [r.retry_after for r in results if isinstance(r, TelegramRetryAfter)]
    assert sum(1 for r in results if not isinstance(r, Exception)) == 30
    assert len(refused) == 10 and all(r >= 1 for r in refused)
    stats = await sandbox_client.stats()
    assert stats["limited_by"]["global"] == len(refused)
    assert stats["global_rate_peak"] <= 30
    # allow_paid_broadcast raises the bot's limit to 1000/s
    for uid in ids[40:]:
        await bot.send_message(uid, "paid", allow_paid_broadcast=True)
    stats = await sandbox_client.stats()
    assert stats["retry_after"] == len(refused)


async def test_group_limit_per_minute(bot: Bot, sandbox_client: SandboxClient) -> None:
    members = [await _started(sandbox_client, f"M{i}") for i in range(2)]
    group = await sandbox_client.create_group("Клуб", members)
    await sandbox_client.set_limits(rate=1000, burst=1000)
    for i in range(20):
        await bot.send_message(group["id"], f"g{i}")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(group["id"], "one too many")
    assert info.value.retry_after == 3
    assert (await sandbox_client.stats())["limited_by"] == {"group": 1}


async def test_get_updates_offset_limit_timeout_and_allowed(
    bot: Bot, sandbox: Sandbox, sandbox_client: SandboxClient
) -> None:
    uid = await _started(sandbox_client)
    for i in range(3):
        await sandbox_client.send(uid, f"m{i}")
    first = await bot.get_updates(limit=2, timeout=0)
    assert [u.message.text for u in first if u.message] == ["m0", "m1"]
    rest = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert [u.message.text for u in rest if u.message] == ["m2"]
    # long polling: the call returns as soon as an update arrives
    waiting = asyncio.create_task(bot.get_updates(offset=rest[-1].update_id + 1, timeout=10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await sandbox_client.send(uid, "late")
    got = await asyncio.wait_for(waiting, 5)
    assert got[0].message and got[0].message.text == "late"
    # allowed_updates: excluded kinds are not recorded at all
    await bot.get_updates(offset=got[-1].update_id + 1, timeout=0, allowed_updates=["message"])
    await sandbox_client.block(uid)
    await sandbox_client.unblock(uid)
    await sandbox_client.send(uid, "only messages")
    only = await bot.get_updates(offset=got[-1].update_id + 1, timeout=0)
    assert [u.event_type for u in only] == ["message"]


async def test_second_poller_ends_the_first_with_conflict(bot: Bot, sandbox: Sandbox) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 5)
    assert await second == []


async def test_webhook_delivery_with_secret(bot: Bot, sandbox_client: SandboxClient) -> None:
    received: list[tuple[str | None, dict]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                         await request.json()))
        arrived.set()
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        uid = await _started(sandbox_client)
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cr3t")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        await sandbox_client.send(uid, "via webhook")
        await asyncio.wait_for(arrived.wait(), 5)
        secret, update = received[0]
        assert secret == "s3cr3t" and update["message"]["text"] == "via webhook"
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == []
    finally:
        await runner.cleanup()


async def test_edit_delete_and_callback_answers(bot: Bot, sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="Да", callback_data="yes"),
        InlineKeyboardButton(text="Сайт", url="https://example.org")]])
    msg = await bot.send_message(uid, "Вопрос?", reply_markup=keyboard)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Вопрос?", chat_id=uid, message_id=msg.message_id,
                                    reply_markup=keyboard)
    pressed = await sandbox_client.press(uid, msg.message_id, text="Да")
    query = (await bot.get_updates(timeout=0))[-1].callback_query
    assert query is not None and query.data == "yes" and query.id == pressed["callback_query_id"]
    assert await bot.answer_callback_query(query.id, text="Принято", show_alert=True)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    view = await sandbox_client.chat(uid)
    assert view["callback_answers"][0]["answer"]["text"] == "Принято"
    edited = await bot.edit_message_reply_markup(chat_id=uid, message_id=msg.message_id)
    assert edited.reply_markup is None and edited.edit_date
    assert await bot.delete_message(uid, msg.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(uid, msg.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=uid, message_id=msg.message_id)


async def test_files_copy_forward_commands_chat(bot: Bot, sandbox: Sandbox,
                                                sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    await sandbox_client.set_limits(enabled=False)
    doc = await bot.send_document(uid, BufferedInputFile(b"<script>alert(1)</script>", "x.html"),
                                  caption="<b>отчёт</b>")
    assert doc.document and doc.caption == "отчёт"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.url}/api/files/{doc.document.file_id}") as r:
            assert r.headers["Content-Disposition"] == "attachment"  # never rendered inline
            assert r.content_type == "application/octet-stream"
    photo = await bot.send_photo(uid, BufferedInputFile(b"\x89PNG\r\n", "p.png"))
    assert photo.photo
    again = await bot.send_photo(uid, photo.photo[-1].file_id)
    assert again.photo and again.photo[-1].file_id == photo.photo[-1].file_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(uid, "no-such-file")
    copied = await bot.copy_message(uid, uid, doc.message_id)
    forwarded = await bot.forward_message(uid, uid, doc.message_id)
    assert copied.message_id and forwarded.forward_origin is not None
    assert await bot.set_my_commands([BotCommand(command="start", description="Начать")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    assert (await bot.get_chat(uid)).id == uid
    assert await bot.send_chat_action(uid, "typing")
    with pytest.raises(TelegramNotFound):
        await bot(_Unknown())


class _Unknown(  # a method the sandbox does not know
    __import__("aiogram.methods", fromlist=["GetMe"]).GetMe
):
    __api_method__ = "getSomethingElse"


async def test_injected_faults(bot: Bot, sandbox_client: SandboxClient) -> None:
    await sandbox_client.set_limits(fault_5xx=1.0)
    with pytest.raises(TelegramServerError):
        await bot.get_me()
    await sandbox_client.set_limits(fault_5xx=0.0, fault_drop=1.0)
    with pytest.raises(TelegramNetworkError):
        await bot.get_me()
    await sandbox_client.set_limits(fault_drop=0.0)
    assert (await bot.get_me()).is_bot
    assert (await sandbox_client.stats())["faults"] == 2
