"""Figures that are costly at a million users (totals, breakdowns, key statistics) are computed
at most once per ``ttl`` per console process and served from memory meanwhile: a stale value is
served at once while one background task refreshes it, so a page never waits for a full scan
except on the very first request after start-up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    at: float


class StaleCache:
    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, _Entry[Any]] = {}
        self._refreshing: dict[str, asyncio.Task[Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, compute: Callable[[], Awaitable[T]],
                  ttl: float | None = None) -> tuple[T, float]:
        """The value and its age in seconds (refreshed in the background once older than
        ``ttl``, default the cache's)."""
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:  # one computation for concurrent first requests
                entry = self._entries.get(key)
                if entry is None:
                    entry = _Entry(await compute(), self.clock())
                    self._entries[key] = entry
            return entry.value, 0.0
        if now - entry.at > (self.ttl if ttl is None else ttl) and key not in self._refreshing:
            task = asyncio.create_task(self._refresh(key, compute))
            self._refreshing[key] = task
        return entry.value, now - entry.at

    async def _refresh(self, key: str, compute: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._entries[key] = _Entry(await compute(), self.clock())
        except Exception:  # keep serving the old value; the next request retries
            log.exception("refreshing %s failed", key)
        finally:
            self._refreshing.pop(key, None)

    def forget(self, key: str | None = None) -> None:
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
