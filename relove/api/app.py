"""The ASGI app: the REST API under ``/api/v1`` and whatever else ``relove serve`` serves on the
same port (the console mounts itself at ``/``).

:func:`create_app` gets the settings, engine and session factory from ``main()`` (see
:mod:`relove.api.server`) and keeps them on ``app.state.api``; there are no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from relove.api import idempotency, openapi, problems
from relove.api.auth import TokenVerifier
from relove.api.deps import ApiContext
from relove.api.docs import docs_router
from relove.api.lean import LeanUserRoutes
from relove.api.middleware import BodyLimit, SecurityHeaders
from relove.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from relove.api.telegram import ApiBot
from relove.api.vendor import STATIC_DIR
from relove.config import Settings
from relove.db.types import utcnow
from relove.errors import NotFound
from relove.ops.endpoints import Endpoints
from relove.ops.health import Readiness
from relove.ops.routes import RequestMetrics, ops_router

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
#: routes whose bodies may be up to ``RELOVE_API_MAX_BATCH_BODY``
BATCH_PATHS = (f"{API_PREFIX}/users:batch", f"{API_PREFIX}/events")
#: routes whose bodies may be up to ``RELOVE_API_MAX_IMPORT_BODY`` (uploads)
UPLOAD_PATHS = (f"{API_PREFIX}/imports",)
PRUNE_EVERY_SECONDS = 600.0

DESCRIPTION = """\
The REST API of relove: users and their markers, segments, analytics, broadcasts and events.

Authenticate with `Authorization: Bearer <token>` (`relove tokens create`). Errors are
`application/problem+json` (RFC 9457) with a stable `code`. Every POST and PATCH accepts an
`Idempotency-Key`. Filters are written in the segment language. See docs/api.md.
"""


@dataclass(frozen=True)
class Mounted:
    """Another ASGI app served by the same server under ``path`` (after the API's routes);
    ``close`` runs when the server stops."""

    path: str
    app: ASGIApp
    close: Callable[[], Awaitable[None]] | None = None


def _routers() -> list[object]:
    from relove.api.routes import ROUTERS

    return list(ROUTERS)


def create_app(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    *,
    limiter: RateLimiter | None = None,
    clock: Callable[[], datetime] = utcnow,
    mounts: Sequence[Mounted] = (),
    closers: Sequence[Callable[[], Awaitable[None]]] = (),
) -> FastAPI:
    """The app. ``limiter`` defaults to Redis when ``RELOVE_REDIS_URL`` is set, else in-process;
    ``closers`` run when the server stops (e.g. ``engine.dispose``)."""
    if limiter is None:
        limiter = (
            RedisRateLimiter.from_url(settings.redis_url)
            if settings.redis_url
            else MemoryRateLimiter()
        )
    ctx = ApiContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        verifier=TokenVerifier(sessions, cache_seconds=settings.api_token_cache_seconds),
        limiter=limiter,
        clock=clock,
        bot=ApiBot.from_settings(settings),
        single_reads=_single_reads(engine),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await _fail_interrupted_imports(ctx)
        pruner = asyncio.create_task(_prune_forever(ctx), name="relove-api-prune")
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await ctx.limiter.close()
            for task in list(ctx.tasks):
                task.cancel()
            if ctx.bot is not None:
                await ctx.bot.close()
            for m in mounts:
                if m.close is not None:
                    await m.close()
            for close in closers:
                await close()

    app = FastAPI(
        title="relove API",
        version="1",
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = ctx
    problems.install(app)
    openapi.install(app, API_PREFIX)
    for router in _routers():
        app.include_router(router, prefix=API_PREFIX)  # type: ignore[arg-type]
    app.include_router(docs_router(API_PREFIX))
    # /healthz, /readyz, /metrics (relove.ops; docs/operations.md)
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    readiness = Readiness.for_process(engine, settings.redis_url)
    app.include_router(ops_router(Endpoints(readiness, metrics_token)))
    app.mount(f"{API_PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="api-static")

    @app.api_route(
        f"{API_PREFIX}/{{path:path}}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    async def _unknown(path: str) -> None:
        # Without this an unknown API path would fall through to the app mounted at "/".
        raise NotFound(f"no such API endpoint: {API_PREFIX}/{path}")

    def limit_for(path: str) -> int:
        if path in UPLOAD_PATHS:
            return settings.api_max_import_body
        return settings.api_max_batch_body if path in BATCH_PATHS else settings.api_max_body

    if settings.api_lean_routes:  # innermost: behind the body limit and the headers
        app.add_middleware(LeanUserRoutes, ctx=ctx, prefix=API_PREFIX)
    app.add_middleware(BodyLimit, prefix=API_PREFIX, limit_for=limit_for)
    app.add_middleware(SecurityHeaders, prefix=API_PREFIX, docs_path=f"{API_PREFIX}/docs")
    app.add_middleware(RequestMetrics)
    for m in mounts:
        app.mount(m.path, m.app)
    return app


def _single_reads(engine: AsyncEngine) -> async_sessionmaker[AsyncSession] | None:
    """PostgreSQL: sessions in autocommit on the same pool, for one-SELECT routes (see
    relove.api.routing) — no ``BEGIN``/``COMMIT`` round trips."""
    if engine.dialect.name != "postgresql":
        return None
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


async def _prune_forever(ctx: ApiContext) -> None:
    """Delete expired idempotency keys every 10 minutes (each worker; a delete is cheap)."""
    while True:
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
        try:
            async with ctx.sessions.begin() as session:
                removed = await idempotency.prune(session, now=ctx.clock())
            if removed:
                log.info("removed %s expired idempotency keys", removed)
        except Exception:  # keep pruning later; the API itself is unaffected
            log.exception("pruning idempotency keys failed")


async def _fail_interrupted_imports(ctx: ApiContext) -> None:
    """Import jobs whose process died (no heartbeat for 5 minutes) are marked failed."""
    from relove.bulk.jobs import fail_interrupted_jobs

    try:
        async with ctx.sessions.begin() as session:
            failed = await fail_interrupted_jobs(session)
        if failed:
            log.warning("marked %s interrupted import job(s) failed", failed)
    except Exception:  # the API serves anyway; the jobs stay as they were
        log.exception("checking for interrupted import jobs failed")
