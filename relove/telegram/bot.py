"""The aiogram side of the transport: a message encoded once (:func:`~relove.telegram.message.
encode`) sent through the bot's session (and so through its rate-limit middleware)."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, methods

from relove.telegram.message import OutgoingMessage, encode


def as_method(name: str, body: dict[str, Any]) -> methods.TelegramMethod[Any]:
    """The aiogram method object for a Bot API ``name`` and JSON ``body``."""
    cls = getattr(methods, name[0].upper() + name[1:])
    method: methods.TelegramMethod[Any] = cls.model_validate(body)
    return method


async def send_message(bot: Bot, chat_id: int, message: OutgoingMessage) -> Any:
    """Send ``message`` as the bot (a reply: raises aiogram's errors)."""
    return await bot(as_method(*encode(chat_id, message)))
