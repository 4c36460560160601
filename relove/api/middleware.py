"""ASGI middleware of the API: request body limits (413 as problem+json, checked from
``Content-Length`` when sent and by counting the bytes as they arrive otherwise) and the
security headers of every API response."""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relove.api.problems import problem


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI lets an HTTPException from reading the body through,
    and the app's handler answers it as a 413 problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """ASGI middleware: bodies of requests under ``prefix`` are limited to ``limit_for(path)``
    bytes (paths outside ``prefix`` pass untouched: the console sets its own limits)."""

    def __init__(self, app: ASGIApp, *, prefix: str, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.prefix = prefix
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = _content_length(scope)
        if length is not None and length > limit:
            await _reject(limit, scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _reject(limit, scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(
        413, f"the request body is larger than {limit} bytes", code="payload_too_large",
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


#: the API's JSON needs nothing; the docs page loads its own script and stylesheet
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    """Adds ``nosniff``, no-store caching and a CSP to responses under ``prefix`` (``docs``:
    the docs page's own CSP)."""

    def __init__(self, app: ASGIApp, *, prefix: str, docs_path: str) -> None:
        self.app = app
        self.prefix = prefix
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if path == self.docs_path else API_CSP).encode()
        static = path.startswith(self.prefix + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", csp))
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
