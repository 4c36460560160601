"""The three operations endpoints, independent of any web framework: ``answer(path, auth)``
gives the status, content type and body that both `relove serve` (:mod:`.routes`) and the small
server of the bot and workers (:mod:`.server`) send."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from relove.db.health import describe
from relove.ops.health import Readiness
from relove.ops.metrics import exposition

log = logging.getLogger(__name__)

PATHS = ("/healthz", "/readyz", "/metrics")

#: seconds the gauges read at scrape time (inbox lag, due runs) may take together
COLLECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def _json(status: int, data: object) -> Answer:
    return Answer(status, "application/json", json.dumps(data).encode())


@dataclass
class Endpoints:
    """``readiness`` (None: the process has nothing to check, it is ready once it answers);
    ``metrics_token``: /metrics wants ``Authorization: Bearer <token>`` when set;
    ``collectors`` set gauges that are read from the database at scrape time (shared state:
    the inbox's backlog, due automation runs), each within :data:`COLLECT_TIMEOUT`."""

    readiness: Readiness | None = None
    metrics_token: str | None = None
    collectors: Sequence[Callable[[], Awaitable[object]]] = field(default_factory=tuple)

    async def answer(self, path: str, authorization: str | None = None) -> Answer:
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            if self.readiness is None:
                return _json(200, {"ready": True, "checks": {}})
            ready, checks, details = await self.readiness.run()
            answer: dict[str, object] = {"ready": ready, "checks": checks}
            if details:
                answer["details"] = details
            return _json(200 if ready else 503, answer)
        if path == "/metrics":
            if self.metrics_token is not None and not self._authorized(authorization):
                return _json(401, {"error": "metrics need Authorization: Bearer <token>"})
            await self._collect()
            body, content_type = exposition()
            return Answer(200, content_type, body)
        return _json(404, {"error": "not found"})

    async def _collect(self) -> None:
        """Refresh the scrape-time gauges; one that fails keeps its last value (logged)."""
        if not self.collectors:
            return
        try:
            async with asyncio.timeout(COLLECT_TIMEOUT):
                results = await asyncio.gather(*(c() for c in self.collectors),
                                               return_exceptions=True)  # fmt: skip
        except TimeoutError:
            log.warning("metrics: the gauges read from the database took over %g s",
                        COLLECT_TIMEOUT)  # fmt: skip
            return
        for result in results:
            if isinstance(result, Exception):
                log.warning("metrics: a gauge was not refreshed: %s", describe(result))

    def _authorized(self, authorization: str | None) -> bool:
        assert self.metrics_token is not None
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.metrics_token.encode())
