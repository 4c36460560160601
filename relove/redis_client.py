"""One way to open Redis: a client whose pool WAITS for a free connection.

redis-py's default pool allows 100 connections and then raises ``MaxConnectionsError`` ("Too
many connections") at once. A bot paces every send through Redis, so a burst of more than 100
concurrent acquisitions made the rate limiter fall back to pacing per process — exactly when
the shared budget mattered (measured in bench/cluster.py: 59 messages/s and hundreds of 429s
with three instances). A blocking pool queues those callers for up to ``timeout`` seconds
instead; a Redis that is really gone still fails fast through the socket timeouts.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

#: connections per process and client; callers beyond it wait their turn
MAX_CONNECTIONS = 64


def open_redis(url: str, *, socket_timeout: float = 2.0, wait: float = 5.0) -> Redis:
    """A client for ``url`` sharing at most :data:`MAX_CONNECTIONS` connections; a caller waits
    up to ``wait`` seconds for one (then ``redis.exceptions.ConnectionError``)."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=wait,
        socket_connect_timeout=socket_timeout, socket_timeout=socket_timeout,
    )
    return Redis.from_pool(pool)
