"""The bot's outgoing rate limits, one budget for every process that sends as this bot.

Telegram lets a bot send about 30 messages/s in all, 1/s to one chat (short bursts allowed),
20/min to one group, and up to 1000/s for broadcasts with ``allow_paid_broadcast``; a 429 says
how long to wait. :class:`RateLimiter` paces every message against token buckets kept in a
:class:`RateLimitStorage` — in this process (:mod:`.memory`, the default) or in Redis
(:mod:`.redis`, when ``RELOVE_REDIS_URL`` is set) so that the bot instances and workers of one
bot share them:

* the **global** bucket (``telegram_rate_limit``, 30/s) for replies and free broadcasts;
* the **paid** bucket (``broadcast_paid_rate``, 1000/s) for paid broadcasts;
* a bucket **per chat** (1/s, burst 3) and, for groups, one **per group** (20/min);
* the **pause**: a 429's ``retry_after`` stops every sender until it has passed, including
  messages that already hold a slot (:meth:`RateLimiter.wait_pause` right before the call).

Replies keep priority over broadcasts and automations by a **reserve**: a bulk message takes a
global token only while more than ``reply_reserve`` tokens are left, a reply whenever one is.
So a reply always finds up to ``reply_reserve`` tokens at once, and while replies keep the bucket
low, bulk senders wait — in any process, with no coordination beyond the bucket itself.
Taking tokens is all-or-nothing across the buckets of one message.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from relove.ops import metrics

log = logging.getLogger(__name__)

#: Share of a second a bucket may send in one burst (a small burst keeps the pace even).
BURST_SECONDS = 0.05
#: Longest single sleep while waiting for a slot (then the buckets are asked again).
MAX_WAIT_S = 5.0
#: Messages of one process that wait for a slot by asking the storage; the others queue in
#: the process (first come, first served). Without it thousands of waiting replies polled
#: Redis every few milliseconds, emptied its connection pool and fell back to pacing per
#: process (429s: bench/cluster.py, 10,000 updates). Above the messages one process can send
#: per second even when each waits a second for its chat.
MAX_POLLERS = 32
#: Bot API methods that put a message into a chat (the ones Telegram's flood limits count).
_MESSAGE_PREFIXES = ("send", "copy", "forward")
_NOT_MESSAGES = frozenset({"sendChatAction"})


def counts_as_message(method: str) -> bool:
    """Whether a Bot API method (``sendMessage``, ``copyMessage`` …) sends a message."""
    return method.startswith(_MESSAGE_PREFIXES) and method not in _NOT_MESSAGES


class Priority(enum.Enum):
    #: an answer to someone who is talking to the bot
    reply = "reply"
    #: broadcasts and automations: only what replies leave
    bulk = "bulk"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket to take a token from: ``rate`` tokens/s up to ``capacity``; the take
    succeeds only while at least ``need`` tokens are there (``need`` > 1 keeps a reserve)."""

    key: str
    rate: float
    capacity: float
    need: float = 1.0


class RateLimitStorage(ABC):
    """Where the buckets and the pause live; every method is safe to call from many tasks
    (and, for shared storages, many processes) at once."""

    @abstractmethod
    async def take(self, buckets: Sequence[Bucket]) -> float:
        """Take one token from every bucket and return 0 — or take none and return the
        seconds to wait before asking again (the pause's remainder while paused)."""

    @abstractmethod
    async def pause(self, seconds: float) -> None:
        """Stop all sending for ``seconds`` from now (never shortens a longer pause)."""

    @abstractmethod
    def paused_for(self) -> float:
        """Seconds the pause still lasts as far as this process knows (0: not paused); cheap,
        as it is asked right before every call."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections (the budget itself stays for the others sharing it)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Telegram's limits for one bot (see :meth:`from_settings`)."""

    rate: float = 30.0
    paid_rate: float = 1000.0
    per_chat: float = 1.0
    per_chat_burst: float = 3.0
    per_group_minute: float = 20.0
    #: global tokens bulk senders leave to replies
    reply_reserve: float = 3.0

    def burst(self, rate: float) -> float:
        return max(1.0, rate * BURST_SECONDS)


def _chat_key(chat_id: int | str) -> tuple[str, bool]:
    """The bucket key of a chat and whether it is a group (negative ids and @usernames)."""
    if isinstance(chat_id, int):
        return str(chat_id), chat_id < 0
    return chat_id, True


class RateLimiter:
    """Paces a bot's messages against its :class:`RateLimitStorage` (see the module doc)."""

    def __init__(self, storage: RateLimitStorage, limits: Limits | None = None) -> None:
        self.storage = storage
        self.limits = lim = limits or Limits()
        burst = lim.burst(lim.rate)
        capacity = burst + lim.reply_reserve
        self._reply = Bucket("global", lim.rate, capacity, 1.0)
        self._bulk = Bucket("global", lim.rate, capacity, 1.0 + lim.reply_reserve)
        self._paid = Bucket("paid", lim.paid_rate, lim.burst(lim.paid_rate))
        self._pollers = asyncio.Semaphore(MAX_POLLERS)

    # --- buckets -----------------------------------------------------------------------------
    def chat_buckets(self, chat_id: int | str) -> list[Bucket]:
        lim = self.limits
        key, group = _chat_key(chat_id)
        buckets = [Bucket(f"chat:{key}", lim.per_chat, lim.per_chat_burst)]
        if group:
            burst = max(1.0, min(lim.per_chat_burst, lim.per_group_minute))
            buckets.append(Bucket(f"group:{key}", lim.per_group_minute / 60.0, burst))
        return buckets

    def main_bucket(self, priority: Priority, paid: bool) -> Bucket:
        if paid:
            return self._paid
        return self._reply if priority is Priority.reply else self._bulk

    # --- taking slots ------------------------------------------------------------------------
    async def _take(self, buckets: Sequence[Bucket]) -> None:
        async with self._pollers:  # see MAX_POLLERS
            await self._poll(buckets)

    async def _poll(self, buckets: Sequence[Bucket]) -> None:
        waited = False
        while True:
            await self.wait_pause()
            wait = await self.storage.take(buckets)
            if wait <= 0:
                return
            if not waited:
                waited = True
                metrics.LIMITER_WAITS.inc()
            wait = min(wait, MAX_WAIT_S)
            metrics.LIMITER_WAIT_SECONDS.inc(wait)
            await asyncio.sleep(wait)

    async def acquire(
        self, chat_id: int | str | None, *, priority: Priority = Priority.reply,
        paid: bool = False,
    ) -> None:
        """One message slot for ``chat_id``: its chat's and the bot's (or the paid) bucket at
        once; waits while paused."""
        buckets = [self.main_bucket(priority, paid)]
        if chat_id is not None:
            buckets[:0] = self.chat_buckets(chat_id)
        await self._take(buckets)

    async def acquire_chat(self, chat_id: int | str | None) -> None:
        """Only the chat's buckets (the sender took the bot's slot before, in its lane)."""
        if chat_id is not None:
            await self._take(self.chat_buckets(chat_id))

    # --- 429 ---------------------------------------------------------------------------------
    async def pause(self, seconds: float) -> None:
        """Stop all sending (every process sharing the storage) for ``seconds``."""
        await self.storage.pause(max(0.0, seconds))

    async def wait_pause(self) -> None:
        """Return once no pause is in force; call it right before a Bot API call."""
        # Not a busy wait: sleep to the deadline, then re-check it, as another 429 may
        # have pushed it further while we slept.
        while (delay := self.storage.paused_for()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    # --- broadcasts --------------------------------------------------------------------------
    def lane(self, rate: float, *, paid: bool = False) -> BroadcastLane:
        """A broadcast's share: at most ``rate`` per second, behind replies."""
        limit = min(rate, self.limits.paid_rate if paid else self.limits.rate)
        return BroadcastLane(self, limit, paid=paid)

    async def close(self) -> None:
        await self.storage.close()


def make_limiter(rate: float, burst_seconds: float = BURST_SECONDS) -> AsyncLimiter:
    """A leaky bucket of ``rate`` per second allowing bursts of ``rate × burst_seconds`` (≥ 1)."""
    burst = max(1.0, rate * burst_seconds)
    return AsyncLimiter(burst, burst / rate)


class BroadcastLane:
    """One broadcast's pacing: its own rate (in this process: a broadcast is sent by one worker
    at a time), then a bulk slot from the bot's shared limiter. Waiters are served one at a
    time, so a broadcast never has more than one message waiting for the shared budget."""

    def __init__(self, parent: RateLimiter, rate: float, *, paid: bool) -> None:
        self.parent = parent
        self.rate = rate
        self.paid = paid
        self._own = make_limiter(rate)
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """One broadcast message slot (waits for 429 pauses, the lane's rate and the bot's)."""
        async with self._lock:
            await self.parent.wait_pause()
            await self._own.acquire()
            await self.parent.acquire(None, priority=Priority.bulk, paid=self.paid)

    async def pause(self, seconds: float) -> None:
        await self.parent.pause(seconds)
