"""Liveness and readiness.

``/healthz`` answers 200 while the process serves at all (nothing is checked: a process that can
answer is alive). ``/readyz`` answers 200 only when the process can do its work:

* ``database`` — a ``SELECT 1`` on the primary answers within the deadline;
* ``schema`` — ``alembic_version`` is the head the code was written for (an instance of a new
  release waits for `relove db upgrade`; an old one behind a newer schema is not ready either);
* ``redis`` — ``PING`` answers (only when ``RELOVE_REDIS_URL`` is set);
* ``inbox`` — only `relove run --webhook`: the oldest unprocessed update of the shared inbox
  is at most ``RELOVE_WEBHOOK_READY_MAX_LAG`` seconds old (its figures are reported either way).

Each check gets a short deadline so a probe never hangs on a dead server; the answer is JSON
``{"ready": bool, "checks": {name: "ok" | "<one line why not>"}}`` (no URL, no secret), plus
``"details": {name: {figure: number}}`` for checks that measure something (the inbox lag).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.health import describe
from relove.db.migrate import _declared_head, current_revision, head_revision

#: seconds each readiness check may take
CHECK_TIMEOUT = 3.0

#: a check raises (:class:`NotReady` with its one-line reason) or returns its figures, if any
Check = Callable[[], Awaitable[dict[str, float] | None]]


class NotReady(Exception):
    """A check's one-line reason (and the figures behind it, if it measured any)."""

    def __init__(self, reason: str, figures: dict[str, float] | None = None) -> None:
        super().__init__(reason)
        self.figures = figures


@dataclass
class Readiness:
    """The checks of one process (see the module doc); :meth:`run` runs them all at once."""

    checks: dict[str, Check] = field(default_factory=dict)
    timeout: float = CHECK_TIMEOUT

    @classmethod
    def for_process(cls, engine: AsyncEngine, redis_url: str | None = None,
                    *, timeout: float = CHECK_TIMEOUT,
                    more: dict[str, Check] | None = None) -> Readiness:  # fmt: skip
        """The checks every process has, and ``more`` of its own (the webhook's inbox)."""
        checks: dict[str, Check] = {
            "database": lambda: check_database(engine),
            "schema": lambda: check_schema(engine),
        }
        if redis_url:
            checks["redis"] = lambda: check_redis(redis_url)
        checks.update(more or {})
        return cls(checks, timeout)

    async def run(self) -> tuple[bool, dict[str, str], dict[str, dict[str, float]]]:
        """Ready or not, each check's "ok" or reason, and the figures checks reported."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
        report = {name: status for name, (status, _) in zip(names, results, strict=True)}
        details = {name: figures for name, (_, figures) in zip(names, results, strict=True)
                   if figures is not None}  # fmt: skip
        return all(status == "ok" for status, _ in results), report, details

    async def _one(self, check: Check) -> tuple[str, dict[str, float] | None]:
        try:
            async with asyncio.timeout(self.timeout):
                figures = await check()
        except TimeoutError:
            return f"no answer within {self.timeout:g} s", None
        except NotReady as e:
            return str(e), e.figures
        except Exception as e:  # noqa: BLE001 - any failure means "not ready", said in one line
            return describe(e), None
        return "ok", figures


async def check_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def check_schema(engine: AsyncEngine) -> None:
    current = await current_revision(engine)
    head = _declared_head()
    if head is None:  # the files name no single head: ask Alembic (loaded once)
        head = await asyncio.to_thread(head_revision)
    if current != head:
        state = "empty" if current is None else f"at {current}"
        raise NotReady(f"schema {state}, expected {head}: run `relove db upgrade`")


async def check_redis(url: str) -> None:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT,
                                 socket_timeout=CHECK_TIMEOUT)  # fmt: skip
    try:
        await client.ping()
    finally:
        await client.aclose()


__all__ = ["CHECK_TIMEOUT", "NotReady", "Readiness", "check_database", "check_redis",
           "check_schema"]
