"""The sandbox server: Bot API, control API and web chat in one aiohttp application."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from relove.errors import ConfigError
from relove.sandbox import botapi, control
from relove.sandbox.access import AccessPolicy, access_middleware
from relove.sandbox.core import Sandbox, SandboxConfig
from relove.sandbox.params import MAX_UPLOAD

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
WEB_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


async def _index(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(WEB_DIR / "index.html")
    response.headers["Content-Security-Policy"] = WEB_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


@web.middleware
async def _headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    response = await handler(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def create_sandbox_app(config: SandboxConfig | None = None,
                       sandbox: Sandbox | None = None) -> web.Application:
    """The aiohttp application of a sandbox (a new one for ``config`` unless given)."""
    sb = sandbox or Sandbox(config)
    try:
        policy = AccessPolicy.build(sb.config.host, sb.config.allowed_hosts)
    except ValueError as e:
        raise ConfigError(f"sandbox: {e}") from None

    def count_refusal(kind: str) -> None:
        sb.stats.refused[kind] += 1

    app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024,
                          middlewares=[_headers, access_middleware(policy, count_refusal)])
    botapi.add_routes(app, sb)
    control.add_routes(app, sb)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", WEB_DIR, follow_symlinks=False)

    async def _stop(_: web.Application) -> None:
        sb.updates.close()
        for chat in sb.world.chats.values():
            chat.closing = True
            chat.touch()
        await sb.updates.delete_webhook()

    app.on_shutdown.append(_stop)
    return app


@asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None) -> AsyncIterator[Sandbox]:
    """Serve a sandbox on ``config.host:config.port`` (port 0: any free port) while in the
    block; ``sandbox.url`` is its base URL."""
    config = config or SandboxConfig()
    sb = Sandbox(config)
    app = create_sandbox_app(sandbox=sb)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        reason = e.strerror or str(e)
        if e.errno == errno.EADDRINUSE:
            reason = "the port is already in use (another sandbox? choose one with --port)"
        raise ConfigError(f"sandbox: cannot listen on {config.host}:{config.port}: "
                          f"{reason}") from None
    server = site._server  # noqa: SLF001 - aiohttp exposes the bound port nowhere else
    port = config.port
    if isinstance(server, asyncio.Server) and server.sockets:
        port = server.sockets[0].getsockname()[1]
    sb.url = f"http://{config.host}:{port}"
    log.info("sandbox listening on %s", sb.url)
    try:
        yield sb
    finally:
        await runner.cleanup()
