"""Telegram's flood limits as the sandbox enforces them, and the counters that prove them.

Token buckets: a bucket of ``burst`` tokens refilled at ``rate`` per second. A message takes one
token from the bot's global bucket (or the paid-broadcast bucket for
``allow_paid_broadcast=true``) and one from its chat's bucket; when either is empty the call is
refused with 429 and ``retry_after`` = whole seconds until both have a token again. Nothing is
taken from any bucket when the call is refused, like Telegram.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class LimitConfig:
    """Configurable limits and injected faults (``relove sandbox --help`` lists them)."""

    enabled: bool = True
    #: messages per second for the whole bot, and the burst the bucket allows
    rate: float = 30.0
    burst: float = 30.0
    #: messages per second with allow_paid_broadcast=true
    paid_rate: float = 1000.0
    #: messages per second to one private chat, and its burst
    per_chat: float = 1.0
    per_chat_burst: float = 3.0
    #: messages per minute to one group
    per_group_minute: float = 20.0
    #: share of Bot API calls answered with a 5xx / with a dropped connection (0..1)
    fault_5xx: float = 0.0
    fault_drop: float = 0.0
    #: share of Bot API calls whose connection is dropped AFTER the method ran (the message is
    #: delivered, the bot never hears so) (0..1)
    fault_drop_after: float = 0.0

    def update(self, values: dict[str, Any]) -> None:
        """Apply a partial update (from the CLI or the control API), checking each value."""
        known = {f.name: f for f in fields(self)}
        for key, raw in values.items():
            if key not in known:
                raise ValueError(f"unknown limit {key!r}")
            if key == "enabled":
                setattr(self, key, bool(raw))
                continue
            value = float(raw)
            if key.startswith("fault_"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{key} must be between 0 and 1")
            elif value <= 0:
                raise ValueError(f"{key} must be positive")
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenBucket:
    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if one is available now)."""
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.tokens = tokens
        self.stamp = now
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1.0


class RateWindow:
    """Events in the last ``span`` seconds, and the most ever seen in one such window."""

    __slots__ = ("span", "stamps", "peak")

    def __init__(self, span: float = 1.0) -> None:
        self.span = span
        self.stamps: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> int:
        stamps = self.stamps
        stamps.append(now)
        edge = now - self.span
        while stamps[0] <= edge:
            stamps.popleft()
        n = len(stamps)
        if n > self.peak:
            self.peak = n
        return n

    def current(self, now: float) -> int:
        edge = now - self.span
        return sum(1 for t in self.stamps if t > edge)


@dataclass
class Stats:
    """Counters of the Bot API traffic, read through ``GET /api/stats``."""

    started: float = field(default_factory=time.monotonic)
    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    limited: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    faults: int = 0
    global_window: RateWindow = field(default_factory=RateWindow)
    peak_chat_rate: int = 0
    peak_chat_id: int | None = None
    peak_group_minute: int = 0
    #: requests refused by the access rules, by rule ("host", "browser")
    refused: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        return {
            "calls": dict(self.calls),
            "calls_total": sum(self.calls.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "retry_after": self.statuses.get(429, 0),
            "forbidden": self.statuses.get(403, 0),
            "limited_by": dict(self.limited),
            "messages": self.messages,
            "faults": self.faults,
            "elapsed_seconds": round(elapsed, 3),
            "global_rate_now": self.global_window.current(now),
            "global_rate_peak": self.global_window.peak,
            "global_rate_average": round(self.messages / elapsed, 3),
            "chat_rate_peak": self.peak_chat_rate,
            "chat_rate_peak_chat_id": self.peak_chat_id,
            "group_minute_peak": self.peak_group_minute,
            "refused": dict(self.refused),
        }


class Limiter:
    """Flood control of one bot: check-and-take for a message to a chat, with rate counters."""

    def __init__(self, config: LimitConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self.reset()

    def reset(self) -> None:
        now = time.monotonic()
        cfg = self.config
        self._global = TokenBucket(cfg.rate, cfg.burst, now)
        self._paid = TokenBucket(cfg.paid_rate, cfg.paid_rate, now)
        self._chats: dict[int, TokenBucket] = {}
        self._chat_windows: dict[int, RateWindow] = {}

    def reconfigure(self) -> None:
        """Apply a changed config to existing buckets (rates take effect immediately)."""
        cfg = self.config
        self._global.rate, self._global.capacity = cfg.rate, max(cfg.burst, 1.0)
        self._paid.rate, self._paid.capacity = cfg.paid_rate, max(cfg.paid_rate, 1.0)
        self._chats.clear()

    def _chat_bucket(self, chat_id: int, group: bool, now: float) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            cfg = self.config
            if group:
                bucket = TokenBucket(cfg.per_group_minute / 60.0, cfg.per_group_minute, now)
            else:
                bucket = TokenBucket(cfg.per_chat, cfg.per_chat_burst, now)
            self._chats[chat_id] = bucket
        return bucket

    def acquire(self, chat_id: int, *, group: bool = False, paid: bool = False) -> int:
        """Take a message slot for ``chat_id``; return 0, or the retry_after seconds on refusal."""
        now = time.monotonic()
        if self.config.enabled:
            main = self._paid if paid else self._global
            chat = self._chat_bucket(chat_id, group, now)
            wait_main = main.wait(now)
            wait_chat = chat.wait(now)
            if wait_main or wait_chat:
                scope = "chat" if wait_chat >= wait_main else ("paid" if paid else "global")
                if group and scope == "chat":
                    scope = "group"
                self.stats.limited[scope] += 1
                return max(1, math.ceil(max(wait_main, wait_chat)))
            main.take()
            chat.take()
        self._count(chat_id, group, now)
        return 0

    def _count(self, chat_id: int, group: bool, now: float) -> None:
        stats = self.stats
        stats.messages += 1
        stats.global_window.add(now)
        window = self._chat_windows.get(chat_id)
        if window is None:
            window = self._chat_windows[chat_id] = RateWindow(60.0 if group else 1.0)
        n = window.add(now)
        if group:
            if n > stats.peak_group_minute:
                stats.peak_group_minute = n
        elif n > stats.peak_chat_rate:
            stats.peak_chat_rate = n
            stats.peak_chat_id = chat_id
