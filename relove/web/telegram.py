"""How the console talks to Telegram as the bot: live-chat messages and test sends.

One :class:`ConsoleBot` per console process: the lean Bot API client, paced by the bot's rate
limiter as an interactive reply (ahead of broadcast messages; a 429 pauses all sending and the
message is retried once the pause is over)."""

from __future__ import annotations

import logging

from relove.broadcasts.base import Outcome, SendResult
from relove.broadcasts.botapi import BotApiClient, message_payload
from relove.broadcasts.content import RenderedMessage
from relove.broadcasts.ratelimit import BotRateLimiter
from relove.config import Settings

log = logging.getLogger(__name__)
RETRIES = 3


class ConsoleBot:
    def __init__(self, client: BotApiClient, limiter: BotRateLimiter) -> None:
        self.client = client
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleBot | None:
        """None when no bot token is configured (the console then sends nothing)."""
        if not settings.token:
            return None
        return cls(BotApiClient(settings.token, settings.telegram_api_url),
                   BotRateLimiter.from_settings(settings))

    async def send(self, chat_id: int, message: RenderedMessage) -> SendResult:
        method, body = message_payload(chat_id, message)
        result = SendResult(Outcome.unknown, error="not sent")
        for _ in range(RETRIES):
            await self.limiter.acquire_interactive(chat_id)
            result = await self.client.call(method, body)
            if result.outcome is not Outcome.retry_after:
                return result
            self.limiter.pause(result.retry_after or 1.0)
            log.warning("429 while sending from the console: paused %ss", result.retry_after)
        return result

    async def close(self) -> None:
        await self.client.close()
