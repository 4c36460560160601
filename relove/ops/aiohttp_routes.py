"""``/healthz``, ``/readyz`` and ``/metrics`` on an aiohttp application — the webhook server of
`relove run --webhook` serves them on its own port (for a proxy that checks the same port it
forwards to) besides ``RELOVE_METRICS_LISTEN``::

    add_probe_routes(server.app, endpoints)
"""

from __future__ import annotations

from aiohttp import web

from relove.ops.endpoints import PATHS, Endpoints


def add_probe_routes(app: web.Application, endpoints: Endpoints) -> None:
    async def handle(request: web.Request) -> web.Response:
        got = await endpoints.answer(request.path, request.headers.get("Authorization"))
        content_type, _, params = got.content_type.partition(";")
        charset = "utf-8" if "charset" in params else None
        return web.Response(body=got.body, status=got.status, content_type=content_type,
                            charset=charset, headers={"Cache-Control": "no-store"})

    for path in PATHS:
        app.router.add_get(path, handle)
