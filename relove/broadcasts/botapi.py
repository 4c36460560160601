"""A lean Bot API client for the sending path: JSON over one pooled aiohttp session.

Broadcast workers send thousands of identical-shaped messages per minute. aiogram builds a
multipart form, validates the answer into pydantic models (and, for ``Response[Message]``,
rebuilds a generic model on every call), and importing it costs ~120 MB of resident memory. The
sender needs none of that: :class:`BotApiClient` POSTs JSON to ``/bot<token>/<method>`` over
keep-alive connections and :func:`classify` maps Telegram's answer to the same outcomes the
aiogram path (:class:`relove.broadcasts.telegram.TelegramSend`) gives. The bot's interactive path
stays on aiogram.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from relove.broadcasts.base import Outcome, SendResult
from relove.broadcasts.content import Recipient, RenderedMessage
from relove.broadcasts.models import MediaKind
from relove.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
#: simultaneous connections to the Bot API (aiogram's default too)
CONNECTIONS = 100
TIMEOUT_S = 60.0
CONNECT_S = 10.0


def classify(status: int, body: str) -> SendResult:
    """Telegram's answer (HTTP status and body) as a send outcome, like aiogram's errors map:
    ``parameters.retry_after`` → retry_after; 403 → blocked; 5xx → unknown (Telegram's own 500
    usually means "not sent", but a 502/504 from its front end can follow a delivery, and the
    two can't be told apart reliably); an answer that is not the Bot API's JSON → unknown; any
    other error (400 chat not found or bad markup, 401, 404, migrate_to_chat_id …) → failed."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return SendResult(Outcome.unknown, error=f"HTTP {status}: not a Bot API answer")
    if 200 <= status <= 226 and data.get("ok"):
        result = data.get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return SendResult(Outcome.sent, message_id=message_id)
    description = str(data.get("description") or f"HTTP {status}")
    parameters = data.get("parameters")
    if isinstance(parameters, dict) and parameters.get("retry_after"):
        return SendResult(Outcome.retry_after, error=description,
                          retry_after=float(parameters["retry_after"]))
    if status == 403:
        return SendResult(Outcome.blocked, error=description)
    if status >= 500:
        return SendResult(Outcome.unknown, error=description)
    return SendResult(Outcome.failed, error=description)


def network_outcome(exc: BaseException) -> SendResult:
    """A network error as an outcome: ``transient`` (retried) only when the request cannot
    have been sent — the connection was never made (refused, DNS failure, connect timeout);
    anything later (a read timeout, the connection dropped after the request was written)
    may follow a delivery → ``unknown``."""
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return SendResult(Outcome.transient, error=f"{type(exc).__name__}: {exc}")
    if isinstance(exc, asyncio.TimeoutError):
        return SendResult(Outcome.unknown, error="Request timeout error")
    return SendResult(Outcome.unknown, error=f"{type(exc).__name__}: {exc}")


def message_payload(chat_id: int, message: RenderedMessage, *, paid: bool = False) -> tuple[
        str, dict[str, Any]]:
    """The Bot API method and JSON body for one rendered broadcast message (parse_mode HTML,
    like the bot's default)."""
    body: dict[str, Any] = {"chat_id": chat_id, "parse_mode": "HTML"}
    if message.media_kind is None:
        method = "sendMessage"
        body["text"] = message.text
    else:
        method = "sendPhoto" if message.media_kind is MediaKind.photo else "sendDocument"
        body[message.media_kind.value] = message.media or ""
        if message.text:
            body["caption"] = message.text
    if message.buttons:
        body["reply_markup"] = {"inline_keyboard": [
            [{"text": b.text, "url": b.url} for b in row] for row in message.buttons]}
    if paid:
        body["allow_paid_broadcast"] = True
    return method, body


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
    def from_settings(cls, settings: Any) -> BotApiClient:
        token = settings.token
        if not token:
            raise ConfigError(
                "RELOVE_BOT_TOKEN is not set: get a token from @BotFather, "
                "or run `relove demo` to try the bot in the local sandbox"
            )
        return cls(token, settings.telegram_api_url)

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

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> SendResult:
        return await self.call("editMessageText", {
            "chat_id": chat_id, "message_id": message_id, "text": text, "parse_mode": "HTML"})


class HttpSend:
    """The broadcast ``send`` callable over :class:`BotApiClient` (the worker's default)."""

    def __init__(self, client: BotApiClient, *, paid: bool = False) -> None:
        self.client = client
        self.paid = paid

    async def __call__(self, recipient: Recipient, message: RenderedMessage) -> SendResult:
        method, body = message_payload(recipient.id, message, paid=self.paid)
        return await self.client.call(method, body)


__all__ = ["BotApiClient", "HttpSend", "classify", "message_payload", "network_outcome"]
