"""Verifying bearer tokens per request, with a short in-process cache.

A verified token is trusted for ``RELOVE_API_TOKEN_CACHE_SECONDS`` (5) before it is looked up
again, so a busy integration costs no token query per request; a revocation reaches every
process within that time. The cache is keyed by the SHA-256 of the whole token, so only the
exact token that was verified hits it. ``last_used_at`` is written at most once a minute per
token and process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.api.tokens import LAST_USED_EVERY, Principal, hash_token, mark_used, verify_token
from relove.db.types import utcnow

CACHE_MAX = 10_000


class TokenVerifier:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        cache_seconds: float,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._marked: dict[int, float] = {}

    async def verify(self, token: str) -> Principal:
        digest = hash_token(token)
        now = self._monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            principal = hit[0]
        else:
            async with self._sessions() as session:
                principal = await verify_token(session, token)
            if self._ttl > 0:
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
                self._cache[digest] = (principal, now + self._ttl)
        last = self._marked.get(principal.token_id)
        if last is None or now - last >= LAST_USED_EVERY.total_seconds():
            self._marked[principal.token_id] = now
            async with self._sessions.begin() as session:
                await mark_used(session, principal.token_id, self._clock())
        return principal

    def forget(self) -> None:
        """Drop the cache (tests, and after a revocation in this process)."""
        self._cache.clear()
        self._marked.clear()
