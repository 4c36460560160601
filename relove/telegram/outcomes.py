"""What became of a Bot API call: ONE classification for every sender.

The lean client (:mod:`relove.telegram.client`) answers every call with a :class:`SendResult`;
the broadcast sender (and anything else that must never send twice) decides on its
:class:`Outcome`: ``sent``; ``blocked`` (403); ``failed`` (any other refusal: nothing was
delivered); ``retry_after`` (429: wait, then the same call again); ``transient`` (nothing can have
reached Telegram: try again); ``unknown`` (it may have been delivered: never resent silently).
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass

import aiohttp


class Outcome(enum.StrEnum):
    sent = "sent"
    #: 403: the user blocked the bot, is deactivated, or never started it
    blocked = "blocked"
    #: a permanent error for this recipient (400 chat not found, bad request …)
    failed = "failed"
    #: 429: wait ``retry_after``, then try the same message again
    retry_after = "retry_after"
    #: nothing can have reached Telegram (connection refused, DNS, connect timeout): try again
    #: with backoff
    transient = "transient"
    #: the request may have been delivered (timeout or dropped connection after it was sent,
    #: 5xx, an answer that is not the Bot API's): never resent silently
    unknown = "unknown"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    message_id: int | None = None
    error: str | None = None
    retry_after: float | None = None


def classify(status: int, body: str) -> SendResult:
    """Telegram's answer (HTTP status and body) as an outcome: ``parameters.retry_after`` →
    retry_after; 403 → blocked; 5xx → unknown (Telegram's own 500 usually means "not sent", but
    a 502/504 from its front end can follow a delivery, and the two can't be told apart
    reliably); an answer that is not the Bot API's JSON → unknown; any other error (400 chat not
    found or bad markup, 401, 404, migrate_to_chat_id …) → failed."""
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
