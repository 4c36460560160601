"""The rate limiter as an aiogram request middleware (aiogram's own idiom for wrapping every
Bot API call, cf. its ``RetryAfterMiddleware``): every message the bot sends takes a reply slot
first, and a 429 pauses every sender of the bot, then the message is tried again."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

from relove.ops import metrics
from relove.telegram.ratelimit.base import Priority, RateLimiter, counts_as_message

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

#: attempts per message when Telegram answers 429
RETRIES = 3


class RateLimitMiddleware(BaseRequestMiddleware):
    """Paces message-sending calls through ``limiter`` as replies (ahead of broadcasts)."""

    def __init__(self, limiter: RateLimiter, *, retries: int = RETRIES) -> None:
        self.limiter = limiter
        self.retries = retries

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        if not counts_as_message(name):
            return await make_request(bot, method)
        chat_id = getattr(method, "chat_id", None)
        chat = chat_id if isinstance(chat_id, int | str) else None
        paid = bool(getattr(method, "allow_paid_broadcast", False))
        for attempt in range(1, self.retries + 1):
            await self.limiter.acquire(chat, priority=Priority.reply, paid=paid)
            try:
                response = await make_request(bot, method)
            except TelegramRetryAfter as e:
                metrics.TELEGRAM_SENDS.labels("retry_after", "bot").inc()
                metrics.TELEGRAM_429.inc()
                await self.limiter.pause(e.retry_after)
                log.warning("429 on %s: all sending paused for %ss", name, e.retry_after)
                if attempt == self.retries:
                    raise
                continue
            except TelegramForbiddenError:
                metrics.TELEGRAM_SENDS.labels("blocked", "bot").inc()
                raise
            except TelegramAPIError:
                metrics.TELEGRAM_SENDS.labels("failed", "bot").inc()
                raise
            metrics.TELEGRAM_SENDS.labels("sent", "bot").inc()
            return response
        raise AssertionError("unreachable")


def limiter_of(bot: Bot) -> RateLimiter | None:
    """The limiter a bot's session paces its messages with (None without one)."""
    for middleware in bot.session.middleware:
        if isinstance(middleware, RateLimitMiddleware):
            return middleware.limiter
    return None
