"""The aiogram side of broadcasts: the ``send`` callable, and the bot session that paces
every outgoing message through the shared :class:`BotRateLimiter` (replies first)."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from relove.broadcasts.base import Outcome, SendResult
from relove.broadcasts.botapi import network_outcome
from relove.broadcasts.content import Button, Recipient, RenderedMessage
from relove.broadcasts.models import MediaKind
from relove.broadcasts.ratelimit import BotRateLimiter, holding_slot, slot_held

log = logging.getLogger(__name__)

#: Bot API methods that put a message into a chat (the ones Telegram's flood limits count).
_MESSAGE_METHOD_PREFIXES = ("Send", "Copy", "Forward")
_UNLIMITED = frozenset({"SendChatAction"})
INTERACTIVE_RETRIES = 3


def keyboard(rows: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.text, url=b.url) for b in row] for row in rows
        ]
    )


async def send_rendered(
    bot: Bot, chat_id: int, message: RenderedMessage, *, paid: bool = False
) -> Any:
    """Send one rendered broadcast message (raises aiogram's errors)."""
    markup = keyboard(message.buttons)
    extra: dict[str, Any] = {"allow_paid_broadcast": True} if paid else {}
    if message.media_kind is MediaKind.photo:
        return await bot.send_photo(
            chat_id,
            photo=message.media or "",
            caption=message.text or None,
            reply_markup=markup,
            **extra,
        )
    if message.media_kind is MediaKind.document:
        return await bot.send_document(
            chat_id,
            document=message.media or "",
            caption=message.text or None,
            reply_markup=markup,
            **extra,
        )
    return await bot.send_message(chat_id, message.text, reply_markup=markup, **extra)


class TelegramSend:
    """``send(recipient, message) -> SendResult`` over aiogram; Bot API errors become outcomes."""

    def __init__(self, bot: Bot, *, paid: bool = False) -> None:
        self.bot = bot
        self.paid = paid

    async def __call__(self, recipient: Recipient, message: RenderedMessage) -> SendResult:
        try:
            with holding_slot():  # the sender paced this call through its lane already
                sent = await send_rendered(self.bot, recipient.id, message, paid=self.paid)
        except TelegramRetryAfter as e:
            return SendResult(Outcome.retry_after, error=e.message, retry_after=e.retry_after)
        except TelegramForbiddenError as e:  # blocked, deactivated, can't initiate conversation
            return SendResult(Outcome.blocked, error=e.message)
        except TelegramBadRequest as e:  # chat not found, bad markup …
            return SendResult(Outcome.failed, error=e.message)
        except TelegramNetworkError as e:  # aiogram chains the aiohttp error it wraps
            return network_outcome(e.__cause__ or e)
        except TimeoutError as e:
            return network_outcome(e)
        except TelegramServerError as e:  # 5xx: may have been delivered (see botapi.classify)
            return SendResult(Outcome.unknown, error=e.message)
        except ClientDecodeError:
            return SendResult(Outcome.unknown, error="not a Bot API answer")
        except TelegramAPIError as e:
            return SendResult(Outcome.failed, error=e.message)
        return SendResult(Outcome.sent, message_id=sent.message_id)


def _counts(method: TelegramMethod[Any]) -> bool:
    name = type(method).__name__
    return name.startswith(_MESSAGE_METHOD_PREFIXES) and name not in _UNLIMITED


class RateLimitedSession(AiohttpSession):
    """The bot's HTTP session: every message-sending call waits for the shared limiter.

    Replies (any call not made by a broadcast lane) go ahead of broadcast messages; a 429
    pauses all sending for ``retry_after`` and the reply is retried.
    """

    def __init__(self, limiter: BotRateLimiter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limiter = limiter

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        if slot_held() or not _counts(method):
            return await super().make_request(bot, method, timeout)
        chat_id = getattr(method, "chat_id", None)
        chat = chat_id if isinstance(chat_id, int) else None
        for attempt in range(INTERACTIVE_RETRIES):
            await self.limiter.acquire_interactive(chat)
            try:
                return await super().make_request(bot, method, timeout)
            except TelegramRetryAfter as e:
                self.limiter.pause(e.retry_after)
                log.warning("429 on %s: all sending paused for %ss", type(method).__name__,
                            e.retry_after)
                if attempt == INTERACTIVE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


def limiter_of(bot: Bot, settings: object) -> BotRateLimiter:
    """The bot's shared limiter (a fresh one when the bot was built without it)."""
    limiter = getattr(bot.session, "limiter", None)
    if isinstance(limiter, BotRateLimiter):
        return limiter
    return BotRateLimiter.from_settings(settings)


async def send_test(bot: Bot, session: Any, broadcast_id: int, admin_ids: list[int]) -> list[str]:
    """Send a broadcast's message to each admin, rendered for that admin; one line per admin."""
    from relove.broadcasts import service
    from relove.db.models import User

    broadcast = await service.get_broadcast(session, broadcast_id)
    template = service.template_of(broadcast)
    lines = []
    for admin_id in admin_ids:
        user = await session.get(User, admin_id)
        recipient = service.recipient_of(user) if user is not None else Recipient(id=admin_id)
        try:
            await send_rendered(bot, admin_id, template.render(recipient))
        except TelegramAPIError as e:
            lines.append(f"{admin_id}: not sent ({e.message})")
            continue
        lines.append(f"{admin_id}: sent")
    return lines
