"""AI sessions in the chat: a mode starts by its command or deep link, its messages go to the
mode (not the companion), it ends by its end command or button, by itself after its turns,
or by /stop and /cancel. Rendering only: the rules live in relove/conversation/ai_sessions."""

from __future__ import annotations

import html
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, CommandStart, Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.chat_action import ChatActionSender
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from relove.bot.handlers.recommend import keyboard as items_keyboard
from relove.bot.handlers.reply import send_markdown, send_quietly
from relove.bot.texts import Texts
from relove.conversation.ai_sessions.modes import AIMode
from relove.conversation.ai_sessions.service import Kind, Outcome
from relove.conversation.components import ConversationComponents
from relove.db.models import UserSnapshot

log = logging.getLogger(__name__)

_REFUSALS = {
    Kind.needs_model: "ai_session_needs_model",
    Kind.failed: "ai_session_failed",
    Kind.ended: "ai_session_ended",
    Kind.expired: "ai_session_expired",
    Kind.busy: "ai_session_busy",
    Kind.fallback: "conversation_fallback",
    Kind.rate: "conversation_rate_limited",
    Kind.daily: "conversation_daily_limit",
}


class AISessionCallback(CallbackData, prefix="ais"):
    """The end button of a session: ``ais:<session id>``."""

    session: int


def _command(message: Message) -> str | None:
    text = message.text or ""
    if not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else None


class ModeCommand(Filter):
    """A command that starts a mode (read from the current file, so /reload applies)."""

    async def __call__(
        self, message: Message, conversation: ConversationComponents
    ) -> bool | dict[str, Any]:
        name = _command(message)
        mode = conversation.scenarios.mode_for_command(name) if name else None
        return {"ai_mode": mode} if mode else False


class ModeEndCommand(Filter):
    async def __call__(self, message: Message, conversation: ConversationComponents) -> bool:
        name = _command(message)
        return bool(name and conversation.scenarios.mode_ending_with(name))


class InAISession(Filter):
    """Plain text from a user whose context says they are in a session (the table decides)."""

    async def __call__(self, message: Message, user: UserSnapshot | None = None) -> bool:
        if user is None or not message.text or message.text.startswith("/"):
            return False
        return isinstance((user.context or {}).get("ai_session"), dict)


def end_keyboard(mode: AIMode | None, session_id: int | None) -> InlineKeyboardMarkup | None:
    if mode is None or not mode.end.button or session_id is None:
        return None
    kb = InlineKeyboardBuilder()
    kb.button(text=mode.end.button, callback_data=AISessionCallback(session=session_id).pack())
    return kb.as_markup()


async def render(message: Message, outcome: Outcome, texts: Texts) -> None:
    fallback = texts("reply_not_delivered")
    if outcome.kind in (Kind.started, Kind.answer):
        markup = end_keyboard(outcome.mode, outcome.session_id)
        await send_markdown(message, outcome.text or "…", fallback=fallback, reply_markup=markup)
    elif outcome.kind is Kind.finished:
        await send_quietly(message, outcome.reply_html or texts("ai_session_done_default"))
        if outcome.recommendations:
            lines = [texts("ai_session_recommend_title")]
            for n, (item, reason) in enumerate(outcome.recommendations, 1):
                line = f"{n}. <b>{html.escape(item.title, quote=False)}</b>"
                if reason:
                    line += " — " + html.escape(reason, quote=False)
                lines.append(line)
            items = [item for item, _ in outcome.recommendations]
            await send_quietly(message, "\n".join(lines), reply_markup=items_keyboard(items))
    else:
        await send_quietly(message, texts(_REFUSALS.get(outcome.kind, "conversation_fallback")))


async def _leave_flow(
    session: AsyncSession, user: UserSnapshot, conversation: ConversationComponents
) -> None:
    """A mode replaces a question flow the user was in (one guided thing at a time)."""
    if isinstance((user.context or {}).get("scenario"), dict):
        await conversation.engine.cancel(session, user)
    await session.commit()  # the service writes in sessions of its own


async def _start(
    message: Message,
    bot: Bot,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
    mode: AIMode,
) -> None:
    assert conversation.ai is not None
    await _leave_flow(session, user, conversation)
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id):
        outcome = await conversation.ai.start(user, mode)
    await render(message, outcome, texts)


async def on_mode_command(
    message: Message,
    bot: Bot,
    ai_mode: AIMode,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    await _start(message, bot, user, session, texts, conversation, ai_mode)


async def on_deep_link(
    message: Message,
    bot: Bot,
    command: CommandObject,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    mode = conversation.scenarios.mode_for_deep_link((command.args or "").strip() or None)
    if mode is None:
        raise SkipHandler
    await _start(message, bot, user, session, texts, conversation, mode)


async def on_end(
    message: Message,
    bot: Bot,
    user: UserSnapshot,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    assert conversation.ai is not None
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id):
        outcome = await conversation.ai.end(user)
    if outcome is None:
        await send_quietly(message, texts("ai_session_not_active"))
        return
    await render(message, outcome, texts)


async def on_stop(
    message: Message, user: UserSnapshot, texts: Texts, conversation: ConversationComponents
) -> None:
    if conversation.ai is None or await conversation.ai.stop(user.id) is None:
        raise SkipHandler  # not in a session: /cancel may still leave a flow
    await send_quietly(message, texts("ai_session_stopped"))


async def on_button(
    query: CallbackQuery,
    callback_data: AISessionCallback,
    bot: Bot,
    user: UserSnapshot,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    assert conversation.ai is not None
    current = await conversation.ai.current(user.id)
    message = query.message if isinstance(query.message, Message) else None
    if not isinstance(current, tuple) or current[0].id != callback_data.session or message is None:
        await query.answer(texts("ai_session_not_active"))
        return
    await query.answer()
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id):
        outcome = await conversation.ai.end(user)
    if outcome is not None:
        await render(message, outcome, texts)


async def on_text(
    message: Message,
    bot: Bot,
    user: UserSnapshot,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    assert conversation.ai is not None and message.text is not None
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id):
        outcome = await conversation.ai.message(user, message.text)
    if outcome is None:
        raise SkipHandler  # the session ended meanwhile: the companion answers
    if outcome.kind is Kind.expired:
        await render(message, outcome, texts)
        raise SkipHandler
    await render(message, outcome, texts)


def create_router() -> Router:
    """Starting, ending and leaving modes (before the scenario router: /start deep links,
    /cancel)."""
    router = Router(name="ai_sessions")
    private = F.chat.type == "private"
    router.message.register(on_deep_link, CommandStart(deep_link=True), private)
    router.message.register(on_stop, Command("stop", "cancel"))
    router.message.register(on_mode_command, ModeCommand(), private)
    router.message.register(on_end, ModeEndCommand(), private)
    router.callback_query.register(on_button, AISessionCallback.filter())
    return router


def create_text_router() -> Router:
    """Messages inside a session (after the flows and live chat, before the companion)."""
    router = Router(name="ai_sessions_text")
    router.message.register(on_text, InAISession(), F.chat.type == "private")
    return router
