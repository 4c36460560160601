"""Token buckets in this process: the embedded default (one process sends as the bot).

Share one :class:`MemoryRateLimitStorage` between limiters to share their budget (the bot and
the broadcast runner inside ``relove run`` do).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from relove.telegram.ratelimit.base import Bucket, RateLimitStorage

#: forget idle buckets after this many new ones (memory stays flat for any audience)
_SWEEP_EVERY = 2048


class MemoryRateLimitStorage(RateLimitStorage):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: key → (tokens, when they were counted, when the bucket is full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._new = 0
        self._paused_until = 0.0

    def _level(self, bucket: Bucket, now: float) -> float:
        state = self._buckets.get(bucket.key)
        if state is None:
            return bucket.capacity
        tokens, stamp, _ = state
        return min(bucket.capacity, tokens + (now - stamp) * bucket.rate)

    async def take(self, buckets: Sequence[Bucket]) -> float:
        now = self._clock()
        if self._paused_until > now:
            return self._paused_until - now
        levels = [self._level(b, now) for b in buckets]
        wait = max(((b.need - level) / b.rate for b, level in zip(buckets, levels, strict=True)),
                   default=0.0)
        if wait > 0:
            return wait
        for b, level in zip(buckets, levels, strict=True):
            if b.key not in self._buckets:
                self._new += 1
            tokens = level - 1.0
            self._buckets[b.key] = (tokens, now, now + (b.capacity - tokens) / b.rate)
        if self._new >= _SWEEP_EVERY:
            self._sweep(now)
        return 0.0

    def _sweep(self, now: float) -> None:
        """Forget the buckets that are full again (a full bucket is the same as none)."""
        self._new = 0
        for key in [k for k, (_, _, full_at) in self._buckets.items() if full_at <= now]:
            del self._buckets[key]

    async def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    async def close(self) -> None:
        """Nothing to release (the buckets stay for the limiters sharing this storage)."""
