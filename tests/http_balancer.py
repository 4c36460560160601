"""A test-only HTTP load balancer: round robin over upstreams, like HAProxy or nginx in front of
several `relove run --webhook` instances. A request to an upstream that is down (refused or
reset) is tried on the next one; when none answers, the client gets 502 (and Telegram, or the
sandbox, delivers it again). Used by the in-suite cluster test; bench/cluster.py uses nginx.
"""

from __future__ import annotations

import itertools
from types import TracebackType

import aiohttp
from aiohttp import web


class HttpBalancer:
    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams  # base URLs, e.g. http://127.0.0.1:9001
        self.port = 0
        self.forwarded: dict[str, int] = {u: 0 for u in upstreams}
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HttpBalancer:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")}  # fmt: skip
        start = next(self._turn)
        for i in range(len(self.upstreams)):
            upstream = self.upstreams[(start + i) % len(self.upstreams)]
            try:
                async with self._session.request(
                    request.method, upstream + request.path_qs, data=body, headers=headers
                ) as resp:
                    data = await resp.read()
                    self.forwarded[upstream] += 1
                    return web.Response(status=resp.status, body=data,
                                        content_type=resp.content_type)  # fmt: skip
            except (aiohttp.ClientConnectionError, TimeoutError):
                continue
        return web.Response(status=502, text="no upstream answered")
