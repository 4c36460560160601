"""The three operations endpoints, independent of any web framework: ``answer(path, auth)``
gives the status, content type and body that both `relove serve` (:mod:`.routes`) and the small
server of the bot and workers (:mod:`.server`) send."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from relove.ops.health import Readiness
from relove.ops.metrics import exposition

PATHS = ("/healthz", "/readyz", "/metrics")


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
    ``metrics_token``: /metrics wants ``Authorization: Bearer <token>`` when set."""

    readiness: Readiness | None = None
    metrics_token: str | None = None

    async def answer(self, path: str, authorization: str | None = None) -> Answer:
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            if self.readiness is None:
                return _json(200, {"ready": True, "checks": {}})
            ready, checks = await self.readiness.run()
            return _json(200 if ready else 503, {"ready": ready, "checks": checks})
        if path == "/metrics":
            if self.metrics_token is not None and not self._authorized(authorization):
                return _json(401, {"error": "metrics need Authorization: Bearer <token>"})
            body, content_type = exposition()
            return Answer(200, content_type, body)
        return _json(404, {"error": "not found"})

    def _authorized(self, authorization: str | None) -> bool:
        assert self.metrics_token is not None
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.metrics_token.encode())
