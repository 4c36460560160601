"""Typed dependencies of the API routes.

* :data:`SessionDep` — the request's session; :class:`~relove.api.routing.ApiRoute` opens it
  and commits it when the route returns (rolls it back when it raises).
* ``Security(authorize, scopes=[…])`` (read routes) / ``Security(authorize_write, scopes=[…])``
  (POST/PATCH) — ONE dependency that authenticates the bearer token, applies its rate limit,
  checks the scopes and (writes) claims the ``Idempotency-Key``. Routes take the result as a
  :class:`~relove.api.tokens.Principal` (see :func:`reader` / :func:`writer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api import idempotency
from relove.api.auth import TokenVerifier
from relove.api.ratelimit import RateLimiter, retry_after_seconds
from relove.api.telegram import ApiBot
from relove.api.tokens import Principal
from relove.config import Settings
from relove.errors import PermissionDenied, RateLimited, Unauthorized


@dataclass
class ApiContext:
    """What the API's routes share, built once by :func:`relove.api.app.create_app`."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    limiter: RateLimiter
    clock: Callable[[], datetime]
    #: the bot as a sender (test-sends); None without RELOVE_BOT_TOKEN
    bot: ApiBot | None = None
    #: background work started by requests (import jobs), kept referenced until done
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: sessions of the routes marked :func:`~relove.api.routing.single_read` (one SELECT):
    #: on PostgreSQL autocommit on the same pool (no BEGIN/COMMIT); None: they use ``sessions``
    single_reads: async_sessionmaker[AsyncSession] | None = None


def api_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


def get_session(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.session
    return session


async def _session_dep(request: Request) -> AsyncSession:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop
    # that cost more than the route's own query did (see docs/benchmarks.md, API)
    return get_session(request)


async def _context_dep(request: Request) -> ApiContext:
    return api_context(request)


SessionDep = Annotated[AsyncSession, Depends(_session_dep)]
ContextDep = Annotated[ApiContext, Depends(_context_dep)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `relove tokens create` (`Authorization: Bearer rlv_…`).",
)


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The token's principal: authenticated (401), within its rate limit (429) and holding
    every scope the route needs (403)."""
    principal = await check_token(
        api_context(request),
        None if credentials is None else credentials.credentials,
        security_scopes.scopes,
    )
    request.state.principal = principal
    return principal


async def check_token(ctx: ApiContext, token: str | None, scopes: Sequence[str]) -> Principal:
    """What :func:`authorize` checks, in its order: the token (401), its rate limit (429), the
    ``scopes`` (403). Also called by the lean routes (relove.api.lean)."""
    if token is None:
        raise Unauthorized("an API token is required: send `Authorization: Bearer <token>`")
    principal = await ctx.verifier.verify(token)
    s = ctx.settings
    rate = principal.rate_limit or s.api_rate_limit
    burst = principal.rate_burst or s.api_rate_burst
    wait = await ctx.limiter.acquire(str(principal.token_id), rate, burst)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {rate:g} requests/s exceeded", retry_after=retry_after_seconds(wait)
        )
    missing = [scope for scope in scopes if not principal.allows(scope)]
    if missing:
        raise PermissionDenied(f"this token lacks the scope {missing[0]!r}")
    return principal


async def authorize_write(
    security_scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Any unique text (e.g. a UUID): a retry with the same key and the "
            "same request gets the first response again instead of repeating the change.",
        ),
    ] = None,
) -> Principal:
    """:func:`authorize`, then the ``Idempotency-Key`` claimed (see relove.api.idempotency)."""
    principal = await authorize(security_scopes, request, credentials)
    if idempotency_key is not None:
        ctx = api_context(request)
        s = ctx.settings
        digest = idempotency.request_hash(
            request.method, request.url.path, request.url.query, await request.body()
        )
        request.state.idempotency = await idempotency.claim(
            ctx.sessions, principal.token_id, idempotency_key, digest,
            now=ctx.clock(), ttl=timedelta(hours=s.api_idempotency_hours),
            lock=timedelta(seconds=s.api_idempotency_lock_seconds),
        )
    return principal


def reader(*scopes: str) -> Any:
    """``Annotated[Principal, reader("users:read")]`` for a route that reads."""
    return Security(authorize, scopes=list(scopes))


def writer(*scopes: str) -> Any:
    """``Annotated[Principal, writer("users:write")]`` for a POST/PATCH route."""
    return Security(authorize_write, scopes=list(scopes))
