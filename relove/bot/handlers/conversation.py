"""Free text → the LLM companion (only when an LLM is configured; otherwise the message falls
through to the scripted fallback reply)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from relove.bot.handlers.reply import send_markdown, send_quietly
from relove.bot.texts import Texts
from relove.conversation.components import ConversationComponents
from relove.conversation.service import ReplyKind
from relove.db.models import UserSnapshot

_REFUSAL_TEXTS = {
    ReplyKind.fallback: "conversation_fallback",
    ReplyKind.rate: "conversation_rate_limited",
    ReplyKind.daily: "conversation_daily_limit",
    ReplyKind.busy: "conversation_busy",
}


async def llm_enabled(message: Message, conversation: ConversationComponents) -> bool:
    return conversation.llm_enabled


async def talk(
    message: Message,
    bot: Bot,
    user: UserSnapshot,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    assert conversation.chat is not None and message.text is not None
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id):
        reply = await conversation.chat.reply(user, message.text)
    if reply.kind is ReplyKind.answer and reply.text:
        await send_markdown(message, reply.text, fallback=texts("reply_not_delivered"))
    else:
        await send_quietly(message, texts(_REFUSAL_TEXTS.get(reply.kind, "conversation_fallback")))


def create_router() -> Router:
    router = Router(name="conversation")
    router.message.register(
        talk, F.chat.type == "private", F.text, ~F.text.startswith("/"), llm_enabled
    )
    return router
