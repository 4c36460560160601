"""Sending as the bot from outside the bot's process (console live chat, API test-sends).

The lean Bot API client paced by the bot's rate limiter (shared with the bot's processes through
Redis when ``RELOVE_REDIS_URL`` is set) at reply priority — ahead of broadcast messages; a 429
pauses all sending and the message is retried once the pause is over."""

from __future__ import annotations

import logging
from typing import Self

from relove.config import Settings
from relove.telegram.client import BotApiClient
from relove.telegram.message import OutgoingMessage
from relove.telegram.outcomes import Outcome, SendResult
from relove.telegram.ratelimit import Priority, RateLimiter, build_limiter

log = logging.getLogger(__name__)
RETRIES = 3


class PacedBot:
    #: who sends, for the log line of a 429
    who = "outside the bot"

    def __init__(self, client: BotApiClient, limiter: RateLimiter) -> None:
        self.client = client
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Self | None:
        """None when no bot token is configured (nothing can be sent then)."""
        if not settings.token:
            return None
        return cls(BotApiClient.from_settings(settings), build_limiter(settings))

    async def send(self, chat_id: int, message: OutgoingMessage) -> SendResult:
        result = SendResult(Outcome.unknown, error="not sent")
        for _ in range(RETRIES):
            await self.limiter.acquire(chat_id, priority=Priority.reply)
            result = await self.client.send(chat_id, message)
            if result.outcome is not Outcome.retry_after:
                return result
            await self.limiter.pause(result.retry_after or 1.0)
            log.warning("429 while sending from %s: paused %ss", self.who, result.retry_after)
        return result

    async def close(self) -> None:
        await self.client.close()
        await self.limiter.close()
