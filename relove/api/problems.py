"""Errors as ``application/problem+json`` (RFC 9457), mapped from the one exception tree in ONE
place. Every API error has the same shape::

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "unknown segment 'vip'", "code": "invalid_filter", "position": 12}

``code`` is stable and meant for programs; ``detail`` is for people. A stack trace is never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from relove.errors import (
    Conflict,
    DocumentTooLarge,
    FilterError,
    InvalidInput,
    InvalidKey,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ReloveError,
    SchemaError,
    Unauthorized,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: exception class → (HTTP status, code); the first match in order wins (subclasses first).
_MAPPING: list[tuple[type[ReloveError], int, str]] = [
    (NotFound, 404, "not_found"),
    (FilterError, 422, "invalid_filter"),
    (InvalidKey, 422, "invalid_key"),
    (InvalidInput, 422, "invalid_input"),
    (DocumentTooLarge, 422, "document_too_large"),
    (Unauthorized, 401, "unauthorized"),
    (PermissionDenied, 403, "forbidden"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "rate_limited"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (SchemaError, 503, "unavailable"),
]


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str,
    *,
    code: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def status_of(exc: ReloveError) -> tuple[int, str]:
    for cls, status, code in _MAPPING:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def _parts(exc: ReloveError) -> tuple[int, str, dict[str, str], dict[str, Any]]:
    status, code = status_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="relove"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        extra["retry_after"] = exc.retry_after
    if isinstance(exc, FilterError):
        extra["position"] = exc.position
    return status, code, headers, extra


def problem_dict(exc: ReloveError) -> dict[str, Any]:
    """The problem document of one of our errors (e.g. for one item of a batch)."""
    status, code, _, extra = _parts(exc)
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase,
                            "status": status, "detail": str(exc), "code": code}  # fmt: skip
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_for(exc: ReloveError) -> ProblemResponse:
    """The response for one of our errors (the mapping above)."""
    status, code, headers, extra = _parts(exc)
    if status >= 500:
        log.error("API request failed: %s", exc)
    return problem(status, str(exc), code=code, headers=headers, **extra)


def _loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


def validation_problem(exc: RequestValidationError) -> ProblemResponse:
    errors = [
        {
            "loc": _loc(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return problem(422, detail, code="validation_error", errors=errors)


#: FastAPI's answer to a body it cannot decode (not UTF-8): the same 422 as malformed JSON.
_UNPARSABLE_BODY = "There was an error parsing the body"


def http_problem(exc: StarletteHTTPException) -> ProblemResponse:
    status = exc.status_code
    if status == 400 and exc.detail == _UNPARSABLE_BODY:
        return problem(422, "body: cannot be parsed as JSON (UTF-8)", code="validation_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else phrase
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
            415: "unsupported_media_type"}.get(status, "http_error")  # fmt: skip
    return problem(status, detail, code=code, headers=getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(ReloveError)
    async def _relove(_request: Request, exc: ReloveError) -> Response:
        return problem_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return http_problem(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("API request %s %s failed", request.method, request.url.path)
        return problem(500, "internal error; the request was not completed", code="internal")
