"""python-telegram-bot runs a small bot on the sandbox, in polling and in webhook mode: the
``ptb`` group of ``bench/sandbox_fidelity.py``.

The bot greets ``/start`` in HTML with an inline button, answers the button and edits its
message, and echoes text in MarkdownV2 (escaped by PTB's own helper). The checks then call a few
methods through PTB's ``Bot`` directly (photo upload, getFile and download, album, chat member,
commands, a refused MarkdownV2 text, an unimplemented method).
"""

from __future__ import annotations

import html
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.helpers import escape_markdown

from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox

Result = tuple[str, str | None]
WAIT = 30.0


async def _start(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message and update.effective_user
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Да", callback_data="yes")]])
    name = html.escape(update.effective_user.first_name)
    await update.message.reply_text(f"Привет, <b>{name}</b>!", parse_mode=ParseMode.HTML,
                                    reply_markup=keyboard)


async def _button(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query
    await query.answer("Принято")
    await query.edit_message_text("Вы ответили: да")


async def _echo(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message and update.message.text
    text = escape_markdown(update.message.text, version=2)
    await update.message.reply_text(f"{text} *эхо*", parse_mode=ParseMode.MARKDOWN_V2)


def build(url: str, errors: list[str]) -> Application[Any, Any, Any, Any, Any, Any]:
    """The bot; an exception in a handler is recorded in ``errors`` (a failed check)."""
    app = (Application.builder().token(DEFAULT_TOKEN).base_url(f"{url}/bot")
           .base_file_url(f"{url}/file/bot").build())
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(CallbackQueryHandler(_button))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))

    async def record(_: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(f"{type(context.error).__name__}: {context.error}")

    app.add_error_handler(record)
    return app


async def _step(label: str, run: Callable[[], Awaitable[str | None]]) -> Result:
    try:
        return label, await run()
    except Exception as e:  # a broken step is a failed check
        return label, f"{type(e).__name__}: {e}"


async def _conversation(mode: str, client: SandboxClient, uid: int) -> list[Result]:
    """A user talks to the running PTB bot."""
    results: list[Result] = []
    reply: dict[str, Any] = {}

    async def greet() -> str | None:
        sent = await client.send(uid, "/start")
        reply.update(await client.wait_for_bot_message(uid, after=sent["message_id"],
                                                       timeout=WAIT))
        entities = [e["type"] for e in reply["entities"]]
        if reply["text"] != "Привет, Аня!" or entities != ["bold"]:
            return f"got {reply['text']!r} {entities}"
        return None

    async def press() -> str | None:
        pressed = await client.press(uid, reply["message_id"], data="yes", wait=WAIT)
        edited = await client.wait_for_bot_message(
            uid, timeout=WAIT, where=lambda m: m["message_id"] == reply["message_id"]
            and m["edited"])
        answer = (pressed.get("answer") or {}).get("text")
        if answer != "Принято" or edited["text"] != "Вы ответили: да":
            return f"answer {answer!r}, edited {edited['text']!r}"
        return None

    async def echo() -> str | None:
        sent = await client.send(uid, "Цена 1.5 (скидка)!")
        got = await client.wait_for_bot_message(uid, after=sent["message_id"], timeout=WAIT)
        if got["text"] != "Цена 1.5 (скидка)! эхо":
            return f"got {got['text']!r}"
        return None

    for label, run in (("/start answered in HTML with a button", greet),
                       ("button answered and message edited", press),
                       ("MarkdownV2 echo escaped by PTB", echo)):
        results.append(await _step(f"{mode}: {label}", run))
    return results


async def _bot_calls(app: Application[Any, Any, Any, Any, Any, Any], uid: int) -> list[Result]:
    bot = app.bot
    photo = b"\x89PNG\r\n\x1a\n fidelity"

    async def files() -> str | None:
        sent = await bot.send_photo(uid, photo, caption="<i>фото</i>", parse_mode=ParseMode.HTML)
        got = await (await bot.get_file(sent.photo[-1].file_id)).download_as_bytearray()
        return None if bytes(got) == photo else f"downloaded {bytes(got)[:20]!r}"

    async def album() -> str | None:
        first = await bot.send_photo(uid, photo)
        sent = await bot.send_media_group(uid, [InputMediaPhoto(photo),
                                                InputMediaPhoto(first.photo[-1].file_id)])
        groups = {m.media_group_id for m in sent}
        return None if len(sent) == 2 and len(groups) == 1 and None not in groups else (
            f"{len(sent)} messages, groups {groups}")

    async def member() -> str | None:
        status = (await bot.get_chat_member(uid, uid)).status
        return None if status == "member" else f"status {status}"

    async def commands() -> str | None:
        await bot.set_my_commands([("start", "Начать"), ("help", "Помощь")])
        got = [c.command for c in await bot.get_my_commands()]
        return None if got == ["start", "help"] else f"got {got}"

    async def refused() -> str | None:
        try:
            await bot.send_message(uid, "Hello.", parse_mode=ParseMode.MARKDOWN_V2)
        except BadRequest as e:
            wanted = "character '.' is reserved and must be escaped with the preceding '\\'"
            return None if wanted in str(e).lower() else f"message {e}"
        return "accepted"

    async def unsupported() -> str | None:
        try:
            await bot.send_poll(uid, "Когда?", ["Утром", "Вечером"])
        except BadRequest as e:  # not InvalidToken: a 404 would read as a wrong token
            return None if "not supported by the sandbox" in str(e) else f"message {e}"
        return "accepted"

    return [await _step(f"bot: {label}", run) for label, run in (
        ("sendPhoto, getFile and the download", files), ("sendMediaGroup", album),
        ("getChatMember", member), ("setMyCommands / getMyCommands", commands),
        ("bad MarkdownV2 refused with Telegram's words", refused),
        ("an unimplemented method is BadRequest, not InvalidToken", unsupported))]


def _free_port() -> int:
    with socket.socket() as probe:  # PTB's webhook server needs a port number up front
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def ptb_checks(sb: Sandbox, *, webhook: bool = True) -> list[Result]:
    """Polling, then webhook: every step a (label, problem or None) result."""
    assert sb.url
    results: list[Result] = []
    errors: list[str] = []
    async with SandboxClient(sb.url) as client:
        uid = int((await client.create_user("Аня"))["id"])
        app = build(sb.url, errors)
        async with app:
            await app.start()
            assert app.updater
            await app.updater.start_polling(poll_interval=0.0, timeout=1, drop_pending_updates=True)
            results.append(("polling: PTB starts", None))
            results += await _conversation("polling", client, uid)
            results += await _bot_calls(app, uid)
            await app.updater.stop()
            await app.stop()
        results.append(("polling: no handler failed", "; ".join(errors) or None))
        if not webhook:
            return results
        errors.clear()
        app = build(sb.url, errors)
        port = _free_port()
        async with app:
            await app.start()
            assert app.updater
            await app.updater.start_webhook(
                listen="127.0.0.1", port=port, url_path="hook", secret_token="s3cr3t",
                webhook_url=f"http://127.0.0.1:{port}/hook", drop_pending_updates=True)
            info = sb.updates.webhook_info()
            results.append(("webhook: PTB sets its webhook", None if info["url"].endswith(
                f":{port}/hook") else f"webhook {info['url']!r}"))
            results += await _conversation("webhook", client, uid)
            await app.updater.stop()
            await app.stop()
        results.append(("webhook: no handler failed", "; ".join(errors) or None))
    return results
