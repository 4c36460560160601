"""A small per-key sliding-window limiter (live-chat messages per operator per minute)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class PerKeyLimiter:
    def __init__(self, limit: int, period: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock
        self._hits: dict[object, deque[float]] = {}

    def allow(self, key: object) -> bool:
        """Count one hit for ``key``; False (and nothing counted) past the limit."""
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.period:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle keys
            for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.period]:
                del self._hits[k]
        return True
