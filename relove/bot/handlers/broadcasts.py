"""Admin broadcasts from the bot: reply to any message with ``/broadcast FILTER`` → recipient
count and a preview rendered for the admin → Confirm / Cancel → a progress message edited in
place → final stats. Sending happens in the broadcast runner this router starts with the bot
(``RELOVE_BROADCAST_IN_BOT``), or in a separate ``relove worker``."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from relove.admins.models import Role
from relove.bot.background import stopper
from relove.bot.filters import IsAdmin
from relove.bot.texts import Texts
from relove.broadcasts import service
from relove.broadcasts.content import MessageContent
from relove.broadcasts.notify import ProgressMessages
from relove.broadcasts.runner import BroadcastRunner
from relove.broadcasts.telegram import HttpSend
from relove.config import Settings
from relove.db.models import UserSnapshot
from relove.db.types import utcnow
from relove.errors import FilterError, InvalidInput
from relove.telegram.bot import send_message
from relove.telegram.client import BotApiClient
from relove.telegram.message import Button, MediaKind
from relove.telegram.ratelimit import build_limiter
from relove.telegram.ratelimit.middleware import limiter_of

log = logging.getLogger(__name__)
_WORKER_KEY = "broadcast_worker"


class BroadcastCallback(CallbackData, prefix="bc"):
    action: str  # "go" | "no"
    id: int


def content_from_message(message: Message) -> MessageContent:
    """The replied-to message as broadcast content: HTML text or caption, photo or document,
    URL buttons."""
    media_kind, media = None, None
    if message.photo:
        media_kind, media = MediaKind.photo, message.photo[-1].file_id
    elif message.document:
        media_kind, media = MediaKind.document, message.document.file_id
    text = message.html_text if (message.text or message.caption) else ""
    rows: list[tuple[Button, ...]] = []
    markup = message.reply_markup
    if isinstance(markup, InlineKeyboardMarkup):
        for row in markup.inline_keyboard:
            urls = tuple(Button(b.text, b.url) for b in row if b.url)
            if urls:
                rows.append(urls)
    return MessageContent(text=text, media_kind=media_kind, media=media, buttons=tuple(rows))


async def ask(
    message: Message, command: CommandObject, bot: Bot, user: UserSnapshot, session: AsyncSession,
    texts: Texts,
) -> None:
    filter_text = (command.args or "").strip()
    source = message.reply_to_message
    if not filter_text or source is None:
        await message.answer(texts("broadcast_usage"))
        return
    try:
        broadcast = await service.create_broadcast(
            session, name=f"bot {utcnow():%Y-%m-%d %H:%M}", filter_text=filter_text,
            content=content_from_message(source), created_by=user.id,
        )
        where = await service.audience(session, filter_text)
        count = await service.count_audience(session, where)
        rendered = await service.template_of(broadcast).arender(service.recipient_of(user))
    except FilterError as e:
        await session.rollback()
        await message.answer(texts("broadcast_bad_filter", error=str(e)))
        return
    except InvalidInput as e:
        await session.rollback()
        await message.answer(texts("broadcast_bad_message", error=str(e)))
        return
    if not count:
        await session.rollback()
        await message.answer(texts("broadcast_nobody", filter=filter_text))
        return
    await session.commit()
    await send_message(bot, message.chat.id, rendered)
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=texts("broadcast_confirm_button"),
                             callback_data=BroadcastCallback(action="go", id=broadcast.id).pack()),
        InlineKeyboardButton(text=texts("broadcast_cancel_button"),
                             callback_data=BroadcastCallback(action="no", id=broadcast.id).pack()),
    ]])
    await message.answer(
        texts("broadcast_confirm", id=broadcast.id, filter=filter_text, count=count),
        reply_markup=keyboard,
    )


async def confirm(
    query: CallbackQuery, callback_data: BroadcastCallback, session: AsyncSession, texts: Texts
) -> None:
    await query.answer()
    broadcast_id = callback_data.id
    try:
        # write first (the state change), read after: see service.create_broadcast
        count = await service.start_broadcast(
            session, broadcast_id, actor=f"admin:{query.from_user.id}")
        if query.message is not None:  # the confirm message becomes the progress message
            await service.set_progress_message(
                session, broadcast_id, query.message.chat.id, query.message.message_id)
    except service.StateConflict:
        await session.rollback()
        await _gone(query, session, texts, broadcast_id)
        return
    except InvalidInput as e:
        await session.rollback()
        await _edit(query, texts("broadcast_bad_message", error=str(e)))
        return
    await session.commit()
    await _edit(query, texts("broadcast_started", id=broadcast_id, count=count))


async def cancel(
    query: CallbackQuery, callback_data: BroadcastCallback, session: AsyncSession, texts: Texts
) -> None:
    await query.answer()
    try:
        await service.cancel(session, callback_data.id)
    except service.StateConflict:
        await session.rollback()
        await _gone(query, session, texts, callback_data.id)
        return
    await session.commit()
    await _edit(query, texts("broadcast_cancelled", id=callback_data.id))


async def _gone(
    query: CallbackQuery, session: AsyncSession, texts: Texts, broadcast_id: int
) -> None:
    broadcast = await service.get_broadcast(session, broadcast_id)
    await _edit(query, texts("broadcast_gone", id=broadcast_id, status=broadcast.status.value))


async def _edit(query: CallbackQuery, text: str) -> None:
    if isinstance(query.message, Message):
        await query.message.edit_text(text)


# --- the runner inside the bot process ------------------------------------------------------------
async def start_runner(**data: object) -> None:
    """Dispatcher start-up: send due broadcasts from the bot process (RELOVE_BROADCAST_IN_BOT)."""
    dispatcher, bot, settings = data.get("dispatcher"), data.get("bot"), data.get("settings")
    engine, texts = data.get("engine"), data.get("texts")
    if not (isinstance(dispatcher, Dispatcher) and isinstance(bot, Bot)
            and isinstance(settings, Settings) and isinstance(engine, AsyncEngine)
            and isinstance(texts, Texts)):
        return  # started without a bot or database (e.g. a unit test's dispatcher)
    if not settings.broadcast_in_bot:
        return
    # Broadcast messages go over the lean JSON client (a fraction of aiogram's CPU per
    # message), paced by the bot's shared limiter, so replies still go first.
    client = BotApiClient(bot.token, settings.telegram_api_url)
    runner = BroadcastRunner(
        engine, lambda paid: HttpSend(client, paid=paid),
        limiter_of(bot) or build_limiter(settings), settings,
        progress=ProgressMessages(client, texts),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_forever(stop))
    dispatcher[_WORKER_KEY] = (stop, task, client)


stop_runner = stopper(_WORKER_KEY)


def create_router() -> Router:
    router = Router(name="broadcasts")
    router.message.register(ask, Command("broadcast"), IsAdmin(Role.operator))
    router.callback_query.register(confirm, BroadcastCallback.filter(F.action == "go"),
                                   IsAdmin(Role.operator))
    router.callback_query.register(cancel, BroadcastCallback.filter(F.action == "no"),
                                   IsAdmin(Role.operator))
    router.startup.register(start_runner)
    router.shutdown.register(stop_runner)
    return router
