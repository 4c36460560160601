"""Security headers on every console response, and the session cookie.

* A strict Content-Security-Policy: scripts, styles, images and connections from this origin
  only — no inline script or style, no eval (htmx runs with ``allowEval: false``); the login
  page alone may load Telegram's Login Widget when one is configured.
* ``X-Frame-Options: DENY`` (and ``frame-ancestors 'none'``), ``nosniff``, a same-origin
  referrer policy, and no caching of pages (they hold personal data).
* The session cookie: HttpOnly, SameSite=Strict, Path=/, and Secure with the ``__Host-`` prefix
  when the console is reached over https.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
#: the login page with Telegram's Login Widget (a script that opens an iframe)
CSP_WIDGET = CSP.replace("script-src 'self'", "script-src 'self' https://telegram.org") + (
    "; frame-src https://oauth.telegram.org")

COOKIE = "relove_console"
SECURE_COOKIE = "__Host-relove_console"


class SecurityHeaders:
    """Pure ASGI middleware (streams such as SSE pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                if not is_static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_https(request: Request, public_url: str | None) -> bool:
    return request.url.scheme == "https" or (public_url or "").startswith("https://")


def session_token(request: Request) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)


def set_session_cookie(response: Response, token: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(SECURE_COOKIE if secure else COOKIE, token, max_age=max_age, path="/",
                        httponly=True, samesite="strict", secure=secure)


def clear_session_cookie(response: Response) -> None:
    for name, secure in ((COOKIE, False), (SECURE_COOKIE, True)):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=secure)
