"""The Bot API over HTTP: ``/bot<token>/<method>`` answering in Telegram's wire format."""

from __future__ import annotations

import json
import logging
import random
import re
from typing import Any, NoReturn

from aiohttp import web

from relove.sandbox.core import ApiError, Sandbox
from relove.sandbox.media import download_handler
from relove.sandbox.methods import find_method
from relove.sandbox.params import Params

log = logging.getLogger(__name__)

SANDBOX = web.AppKey("sandbox", Sandbox)
TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,200}$")


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(payload, ensure_ascii=False).encode(), status=status,
                        content_type="application/json")


def error_response(sb: Sandbox, error: ApiError) -> web.Response:
    sb.stats.statuses[error.code] += 1
    sb.stats.errors[error.description] += 1
    payload: dict[str, Any] = {"ok": False, "error_code": error.code,
                               "description": error.description}
    if error.parameters:
        payload["parameters"] = error.parameters
    return _json(payload, error.code)


async def call_method(sb: Sandbox, name: str, params: Params) -> Any:
    """Run a Bot API method by name; raise :class:`ApiError` like the HTTP route answers."""
    return await find_method(name)(sb, params)


class BotApi:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.random = random.Random(sb.config.seed)
        self._token: str | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sb = self.sb
        token = request.match_info["token"]
        method = request.match_info["method"]
        if token != self._token:
            if not TOKEN.match(token):
                return error_response(sb, ApiError(404, "Not Found"))
            if sb.config.token and token != sb.config.token:
                return error_response(sb, ApiError(401, "Unauthorized"))
            self._token = token
            sb.set_bot_id(token)
        sb.stats.calls[method] += 1
        try:
            impl = find_method(method)
        except ApiError as e:
            return error_response(sb, e)
        limits = sb.config.limits
        if limits.fault_5xx or limits.fault_drop:
            fault = self._fault(request)
            if fault is not None:
                return fault
        try:
            params = await Params.read(request)
            result = await impl(sb, params)
        except ApiError as e:
            return error_response(sb, e)
        if limits.fault_drop_after and self.random.random() < limits.fault_drop_after:
            self._drop(request)
        sb.stats.statuses[200] += 1
        return _json({"ok": True, "result": result})

    def _fault(self, request: web.Request) -> web.StreamResponse | None:
        limits = self.sb.config.limits
        roll = self.random.random()
        if roll < limits.fault_5xx:
            self.sb.stats.faults += 1
            code = self.random.choice((500, 502))
            description = "Internal Server Error" if code == 500 else "Bad Gateway"
            return error_response(self.sb, ApiError(code, description))
        if roll < limits.fault_5xx + limits.fault_drop:
            self._drop(request)
        return None

    def _drop(self, request: web.Request) -> NoReturn:
        self.sb.stats.faults += 1
        self.sb.stats.statuses[0] += 1
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("sandbox dropped the connection (injected fault)")


def add_routes(app: web.Application, sb: Sandbox) -> None:
    api = BotApi(sb)
    app[SANDBOX] = sb
    app.router.add_route("*", "/bot{token}/{method}", api.handle)
    app.router.add_get("/file/bot{token}/{path:.+}", download_handler(sb))
