"""``/healthz``, ``/readyz`` and ``/metrics`` on a FastAPI app (`relove serve`), plus the
middleware that counts its requests."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relove.ops import metrics
from relove.ops.endpoints import PATHS, Endpoints


def ops_router(endpoints: Endpoints) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def _serve(request: Request) -> Response:
        got = await endpoints.answer(request.url.path, request.headers.get("authorization"))
        headers = {"Cache-Control": "no-store"}
        return Response(got.body, got.status, headers=headers, media_type=got.content_type)

    for path in PATHS:
        router.add_api_route(path, _serve, methods=["GET"])
    return router


class RequestMetrics:
    """Counts every HTTP request by method and status, and times it (ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            metrics.API_REQUESTS.labels(scope.get("method", "?"), str(status)).inc()
            metrics.API_SECONDS.observe(time.perf_counter() - started)
