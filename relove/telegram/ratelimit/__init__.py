"""The bot's rate limiter (see :mod:`.base`), in this process or shared through Redis.

:func:`build_limiter` picks the storage from the settings: Redis when ``RELOVE_REDIS_URL`` is
set (every bot instance and worker of the bot shares one budget), else this process's memory.
The aiogram request middleware lives in :mod:`.middleware` (imported only by the bot).
"""

from __future__ import annotations

from relove.config import Settings
from relove.telegram.ratelimit.base import (
    BroadcastLane,
    Bucket,
    Limits,
    Priority,
    RateLimiter,
    RateLimitStorage,
    counts_as_message,
)
from relove.telegram.ratelimit.memory import MemoryRateLimitStorage


def limits_from_settings(settings: Settings) -> Limits:
    return Limits(
        rate=settings.telegram_rate_limit,
        paid_rate=settings.broadcast_paid_rate,
        per_chat=settings.telegram_chat_rate,
        per_chat_burst=settings.telegram_chat_burst,
        per_group_minute=settings.telegram_group_per_minute,
        reply_reserve=settings.telegram_reply_reserve,
    )


def key_prefix(token: str | None) -> str:
    """Redis keys of one bot: ``relove:ratelimit:<bot id>`` (two bots never share limits)."""
    bot_id = (token or "").partition(":")[0] or "bot"
    return f"relove:ratelimit:{bot_id}"


def build_limiter(settings: Settings, *, prefix: str | None = None) -> RateLimiter:
    """The bot's limiter: shared through Redis when ``RELOVE_REDIS_URL`` is set."""
    storage: RateLimitStorage
    if settings.redis_url:
        from relove.telegram.ratelimit.redis import RedisRateLimitStorage

        storage = RedisRateLimitStorage.from_url(
            settings.redis_url, prefix or key_prefix(settings.token))
    else:
        storage = MemoryRateLimitStorage()
    return RateLimiter(storage, limits_from_settings(settings))


__all__ = [
    "BroadcastLane", "Bucket", "Limits", "MemoryRateLimitStorage", "Priority", "RateLimitStorage",
    "RateLimiter", "build_limiter", "counts_as_message", "key_prefix", "limits_from_settings",
]
