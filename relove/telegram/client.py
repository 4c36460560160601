"""The lean Bot API client: JSON over one pooled aiohttp session, no aiogram.

Broadcast workers send thousands of identical-shaped messages per minute. aiogram builds a
multipart form, validates the answer into pydantic models (and, for ``Response[Message]``,
rebuilds a generic model on every call), and importing it would more than double a worker's
resident memory (docs/benchmarks.md, Broadcasts). A worker needs none of that:
:class:`BotApiClient` POSTs JSON to ``/bot<token>/<method>`` over keep-alive
connections and answers every call with a :class:`~relove.telegram.outcomes.SendResult`
(:func:`~relove.telegram.outcomes.classify`). The bot's interactive path stays on aiogram.

Pacing is the caller's: take a slot from :class:`~relove.telegram.ratelimit.RateLimiter` first.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from relove.config import Settings
from relove.errors import ConfigError
from relove.ops import metrics
from relove.telegram.message import OutgoingMessage, encode
from relove.telegram.outcomes import SendResult, classify, network_outcome

DEFAULT_API_URL = "https://api.telegram.org"
#: simultaneous connections to the Bot API (aiogram's default too)
CONNECTIONS = 100
TIMEOUT_S = 60.0
CONNECT_S = 10.0


def require_token(settings: Settings) -> str:
    """The bot token, or :class:`ConfigError` with the one line that says how to get one."""
    token = settings.token
    if not token:
        raise ConfigError(
            "RELOVE_BOT_TOKEN is not set: get a token from @BotFather, "
            "or run `relove demo` to try the bot in the local sandbox"
        )
    return token


class BotApiClient:
    """``call(method, body) -> SendResult`` over one keep-alive connection pool; never raises
    for Bot API or network errors (they become outcomes)."""

    def __init__(self, token: str, base_url: str | None = None, *,
                 connections: int = CONNECTIONS, timeout: float = TIMEOUT_S) -> None:
        base = (base_url or DEFAULT_API_URL).rstrip("/")
        self._prefix = f"{base}/bot{token}/"
        self._connections = connections
        # a connect timeout of its own: it is the one timeout after which nothing was sent
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, CONNECT_S))
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BotApiClient:
        return cls(require_token(settings), settings.telegram_api_url)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout,
                json_serialize=lambda v: json.dumps(v, ensure_ascii=False),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, body: dict[str, Any]) -> SendResult:
        try:
            async with self.session.post(self._prefix + method, json=body) as resp:
                text = await resp.text()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as e:
            return network_outcome(e)
        return classify(status, text)

    async def send(
        self, chat_id: int | str, message: OutgoingMessage, *, paid: bool = False
    ) -> SendResult:
        """Send one message (see :func:`~relove.telegram.message.encode`)."""
        result = await self.call(*encode(chat_id, message, paid=paid))
        metrics.TELEGRAM_SENDS.labels(result.outcome.value, "lean").inc()
        if result.retry_after is not None:
            metrics.TELEGRAM_429.inc()
        return result

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> SendResult:
        return await self.call("editMessageText", {
            "chat_id": chat_id, "message_id": message_id, "text": text, "parse_mode": "HTML"})
