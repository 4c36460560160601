"""The bot's outgoing rate limits, shared by every message it sends (replies first).

Telegram lets a bot send about 30 messages/s in all, 1/s to one chat (short bursts allowed),
and up to 1000/s for broadcasts with ``allow_paid_broadcast``. One :class:`BotRateLimiter` per
bot paces all of it with aiolimiter leaky buckets:

* the **global** bucket (``telegram_rate_limit``, default 30/s) is shared by interactive replies
  and free broadcasts. A broadcast never takes more than its own rate (default 25/s), so the
  difference is a reserve that replies always find; and when a reply is waiting, broadcast
  messages hold back (``_urgent``) so replies never queue behind a broadcast;
* the **paid** bucket (``allow_paid_broadcast``) is separate, as on Telegram;
* **per chat**, 1 message/s with a burst of 3;
* a 429's ``retry_after`` stops all sending (:meth:`pause`) until it has passed.

Broadcast lanes (:meth:`lane`) serialise their waiters, so at most one broadcast message ever
waits in the global bucket ahead of a reply.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from aiolimiter import AsyncLimiter

#: Share of a second a bucket may send in one burst (a small burst keeps the pace even).
BURST_SECONDS = 0.05
_CHAT_SWEEP_EVERY = 2048

#: Set while a broadcast lane sends: the call already holds its rate slot.
_lane_slot: contextvars.ContextVar[bool] = contextvars.ContextVar("relove_lane_slot", default=False)


def make_limiter(rate: float, burst_seconds: float = BURST_SECONDS) -> AsyncLimiter:
    """A leaky bucket of ``rate`` per second allowing bursts of ``rate × burst_seconds`` (≥ 1)."""
    burst = max(1.0, rate * burst_seconds)
    return AsyncLimiter(burst, burst / rate)


@contextmanager
def holding_slot() -> Iterator[None]:
    """Mark Bot API calls made inside as already paced (used by the broadcast send)."""
    token = _lane_slot.set(True)
    try:
        yield
    finally:
        _lane_slot.reset(token)


def slot_held() -> bool:
    return _lane_slot.get()


class BotRateLimiter:
    def __init__(
        self,
        rate: float = 30.0,
        *,
        paid_rate: float = 1000.0,
        per_chat: float = 1.0,
        per_chat_burst: float = 3.0,
    ) -> None:
        self.rate = rate
        self.paid_rate = paid_rate
        self.per_chat = per_chat
        self.per_chat_burst = per_chat_burst
        self._global = make_limiter(rate)
        self._paid = make_limiter(paid_rate)
        self._chats: dict[int, AsyncLimiter] = {}
        self._new_chats = 0
        self._urgent = 0
        self._no_urgent = asyncio.Event()
        self._no_urgent.set()
        self._paused_until = 0.0
        #: how often a 429 paused everything, for stats and tests
        self.pauses = 0

    @classmethod
    def from_settings(cls, settings: object) -> BotRateLimiter:
        return cls(
            getattr(settings, "telegram_rate_limit", 30.0),
            paid_rate=getattr(settings, "broadcast_paid_rate", 1000.0),
        )

    # --- 429 ---------------------------------------------------------------------------------
    def pause(self, seconds: float) -> None:
        """Stop all sending for ``seconds`` (a 429's ``retry_after``)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    async def wait_pause(self) -> None:
        loop = asyncio.get_running_loop()
        # Not a busy wait: sleep to the deadline, then re-check it, as another 429 may
        # have pushed it further while we slept.
        while (delay := self._paused_until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    # --- per chat ----------------------------------------------------------------------------
    def _chat(self, chat_id: int) -> AsyncLimiter:
        limiter = self._chats.get(chat_id)
        if limiter is None:
            self._new_chats += 1
            if self._new_chats >= _CHAT_SWEEP_EVERY:
                self._sweep_chats()
            limiter = AsyncLimiter(self.per_chat_burst, self.per_chat_burst / self.per_chat)
            self._chats[chat_id] = limiter
        return limiter

    def _sweep_chats(self) -> None:
        """Forget chats whose bucket has fully drained (memory stays flat for any audience)."""
        self._new_chats = 0
        idle = [cid for cid, lim in self._chats.items() if lim.has_capacity(lim.max_rate)]
        for cid in idle:
            del self._chats[cid]

    async def acquire_chat(self, chat_id: int | None) -> None:
        if chat_id is not None:
            await self._chat(chat_id).acquire()

    # --- interactive -------------------------------------------------------------------------
    async def acquire_interactive(self, chat_id: int | None) -> None:
        """One message slot for a reply: ahead of any broadcast message that waits."""
        self._urgent += 1
        self._no_urgent.clear()
        try:
            await self.wait_pause()
            await self.acquire_chat(chat_id)
            await self._global.acquire()
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._no_urgent.set()

    # --- broadcasts --------------------------------------------------------------------------
    def lane(self, rate: float, *, paid: bool = False) -> BroadcastLane:
        """A broadcast's share: at most ``rate`` per second, behind replies."""
        limit = min(rate, self.paid_rate if paid else self.rate)
        return BroadcastLane(self, limit, paid=paid)

    async def _acquire_bulk(self, paid: bool) -> None:
        if paid:
            await self._paid.acquire()
            return
        # A reply waiting for the global bucket goes first; at most this one broadcast message
        # (lanes serialise their waiters) can be ahead of it.
        await self._no_urgent.wait()
        await self.wait_pause()
        await self._global.acquire()


class BroadcastLane:
    def __init__(self, parent: BotRateLimiter, rate: float, *, paid: bool) -> None:
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
            await self.parent._acquire_bulk(self.paid)

    def pause(self, seconds: float) -> None:
        self.parent.pause(seconds)
