"""Outgoing messages into the conversation log.

``RecordOutgoing`` (a request middleware on the bot's session) queues every message Telegram
accepted in a private chat — replies, questions, answers to buttons — on the current update's
:class:`~relove.events.conversation.MessageLog`, which ``MessageLogMiddleware`` (an outer
update middleware of the dispatcher) makes current. The log writes in batches off the reply
path: a reply costs no extra database round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Message, TelegramObject

from relove.events.conversation import MessageLog

_current_log: ContextVar[MessageLog | None] = ContextVar("relove_message_log", default=None)


class MessageLogMiddleware(BaseMiddleware):
    def __init__(self, message_log: MessageLog) -> None:
        self.message_log = message_log

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        token = _current_log.set(self.message_log)
        try:
            return await handler(event, data)
        finally:
            _current_log.reset(token)


class RecordOutgoing(BaseRequestMiddleware):
    """After a successful ``send*`` call to a private chat, queue the message for the log."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        response = await make_request(bot, method)
        message_log = _current_log.get()
        if message_log is not None and type(method).__name__.startswith("Send"):
            sent = getattr(response, "result", response)
            if isinstance(sent, Message) and sent.chat.type == "private":
                kind = str(getattr(sent.content_type, "value", sent.content_type))
                text = sent.text if sent.text is not None else sent.caption
                message_log.add(sent.chat.id, text, message_id=sent.message_id, kind=kind)
        return response
