"""The OpenAPI 3.1 document: FastAPI's, with every error documented as what it is — an
``application/problem+json`` :class:`~relove.api.schemas.Problem` — and the scope each operation
needs named in its description."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from relove.api.schemas import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    "401": "No token, or an unknown or revoked one.",
    "403": "The token lacks the scope this operation needs.",
    "404": "Not found.",
    "409": "A request with the same Idempotency-Key is still in progress, or the state "
    "does not allow the change.",
    "413": "The request body is over its size limit.",
    "422": "The request is invalid (the problem says why; filter errors carry `position`).",
    "429": "The token's rate limit is exhausted; retry after `Retry-After` seconds.",
}
_WRITES = ("post", "put", "patch", "delete")


def _problem(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }
    if status == "429":
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    return response


def build_openapi(app: FastAPI, prefix: str) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, item in schema.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            statuses = ["401", "403", "422", "429"]
            if "{" in path:
                statuses.append("404")
            if method in _WRITES:
                statuses += ["409", "413"]
            for status in statuses:
                responses[status] = _problem(status)
            scopes = [s for req in op.get("security", []) for s in req.get("token", [])]
            if scopes:
                note = f"Scope: `{'`, `'.join(scopes)}` (or `admin`)."
                op["description"] = f"{op['description']}\n\n{note}" if op.get(
                    "description") else note
    return schema


def install(app: FastAPI, prefix: str) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def offline_app() -> FastAPI:
    """The API app on a database it never connects to: for its routes and its document."""
    from relove.api.app import create_app
    from relove.api.ratelimit import MemoryRateLimiter
    from relove.config import Settings
    from relove.db.engine import create_engine, create_session_factory

    settings = Settings(database_url="sqlite+aiosqlite://", redis_url=None, _env_file=None)
    engine = create_engine(settings.database_url)
    return create_app(settings, engine, create_session_factory(engine),
                      limiter=MemoryRateLimiter())  # fmt: skip


def document() -> dict[str, Any]:
    """The API's OpenAPI document, built without a database (nothing connects): what
    ``relove serve --print-openapi`` prints and docs/openapi.json holds."""
    return offline_app().openapi()


def document_text() -> str:
    """:func:`document` as the committed file's text (stable: indented, UTF-8, final newline)."""
    import json

    return json.dumps(document(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":  # python -m relove.api.openapi > docs/openapi.json
    import sys

    sys.stdout.write(document_text())
