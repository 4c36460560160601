"""The scope matrix: every API route, read from the app itself, refuses a request without a
token (401) and a token without the route's scope (403), and accepts the scope alone. A new
route without a scope fails ``test_every_route_names_its_scope``."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.api.app import API_PREFIX, create_app
from relove.api.deps import authorize, authorize_write
from relove.api.openapi import offline_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.api.tokens import ADMIN, SCOPES, create_token
from relove.config import Settings
from relove.db.engine import create_session_factory
from tests.api.conftest import TokenFactory, bearer

PROBLEM = "application/problem+json"
#: Routes any valid token may call (they reveal nothing but the token itself).
NO_SCOPE = {("GET", f"{API_PREFIX}/me")}


def _walk(dependant: Dependant) -> tuple[bool, list[str]]:
    """(does the route authenticate?, the scopes it needs)."""
    authenticates = dependant.call in (authorize, authorize_write)
    scopes = list(dependant.own_oauth_scopes or [])
    for sub in dependant.dependencies:
        a, s = _walk(sub)
        authenticates |= a
        scopes += [x for x in s if x not in scopes]
    return authenticates, scopes


def api_routes() -> list[tuple[str, str, bool, list[str]]]:
    out = []
    for route in iter_route_contexts(offline_app().routes):
        if not (getattr(route, "include_in_schema", False) and route.path.startswith(API_PREFIX)
                and isinstance(getattr(route, "dependant", None), Dependant)):  # fmt: skip
            continue
        authenticates, scopes = _walk(route.dependant)
        for method in sorted(route.methods):
            out.append((method, route.path, authenticates, scopes))
    return out


ROUTES = api_routes()


def test_every_route_names_its_scope() -> None:
    assert len(ROUTES) >= 15
    for method, path, authenticates, scopes in ROUTES:
        assert authenticates, f"{method} {path} does not authenticate"
        if (method, path) not in NO_SCOPE:
            assert scopes, f"{method} {path} needs no scope: add reader()/writer(scope)"
        assert set(scopes) <= set(SCOPES) - {ADMIN}, (method, path, scopes)


@pytest.fixture
async def matrix_client(
    engine: AsyncEngine, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the session's database without emptying it first (the matrix changes nothing
    that matters and runs for every route: ~40 table clears saved)."""
    app = create_app(settings, engine, create_session_factory(engine), limiter=MemoryRateLimiter())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


@pytest.fixture
def matrix_token(engine: AsyncEngine) -> TokenFactory:
    sessions = create_session_factory(engine)

    async def make(*scopes: str) -> str:
        async with sessions.begin() as session:
            _, token = await create_token(session, f"m{secrets.token_hex(6)}", scopes)
        return token

    return make


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def _call(client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    return await client.request(method, _concrete(path), headers=headers)


@pytest.mark.parametrize(("method", "path", "scopes"),
                         [(m, p, s) for m, p, _, s in ROUTES],
                         ids=[f"{m} {p.removeprefix(API_PREFIX)}" for m, p, _, _ in ROUTES])
async def test_scope_matrix(
    matrix_client: httpx.AsyncClient,
    matrix_token: TokenFactory,
    method: str,
    path: str,
    scopes: list[str],
) -> None:
    client, make_token = matrix_client, matrix_token
    r = await _call(client, method, path, {})
    assert r.status_code == 401, (method, path, r.text)
    assert r.headers["content-type"] == PROBLEM
    if scopes:
        others = [s for s in SCOPES if s not in scopes and s != ADMIN]
        r = await _call(client, method, path, bearer(await make_token(*others)))
        assert r.status_code == 403, (method, path, r.text)
        assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "forbidden"
    only = await make_token(*scopes) if scopes else await make_token("users:read")
    r = await _call(client, method, path, bearer(only))
    assert r.status_code not in (401, 403), (method, path, r.text)
