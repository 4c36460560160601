"""The console as an ASGI app: ``create_console(...)`` builds it; the REST API's app mounts it
at ``/`` (its own routes under ``/api/v1`` match first), or it runs on its own.

Routes per resource live in ``relove/web/routes/``; they parse, check the role (the guard of
their :func:`~relove.web.deps.section`), call the same services as the API and the CLI, and
render a page or an htmx fragment."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from relove.admins.models import Role
from relove.config import Settings
from relove.conversation.catalog import CatalogRegistry
from relove.conversation.scenarios import ScenarioRegistry
from relove.db.types import utcnow
from relove.errors import NotFound, ReloveError
from relove.web.context import Console, ConsoleExtension, NavItem
from relove.web.deps import Forbidden, LoginRequired, base_context, is_htmx, texts_for
from relove.web.ratelimit import PerKeyLimiter
from relove.web.render import STATIC_DIR, Renderer
from relove.web.scenarios import own_catalog, own_scenarios
from relove.web.security import SecurityHeaders
from relove.web.telegram import ConsoleBot
from relove.web.texts import LANGUAGES, ConsoleTexts

if TYPE_CHECKING:
    from relove.api.app import Mounted

log = logging.getLogger(__name__)

#: the built-in sections, in navigation order (extensions are inserted before Settings)
NAV = [
    NavItem("/", "nav.dashboard"),
    NavItem("/audience", "nav.audience"),
    NavItem("/segments", "nav.segments"),
    NavItem("/broadcasts", "nav.broadcasts"),
    NavItem("/scenarios", "nav.scenarios"),
    NavItem("/log", "nav.log"),
    NavItem("/ai-sessions", "nav.ai_sessions"),
    NavItem("/automations", "nav.automations"),
    NavItem("/webhooks", "nav.webhooks", Role.owner),
]
SETTINGS_NAV = NavItem("/settings", "nav.settings", Role.owner)


def create_console(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    bot: ConsoleBot | None = None,
    extensions: Sequence[ConsoleExtension] = (),
    clock: Callable[[], datetime] = utcnow,
    read_sessions: async_sessionmaker[AsyncSession] | None = None,
    scenarios: ScenarioRegistry | None = None,
    catalog: CatalogRegistry | None = None,
) -> FastAPI:
    """The console app. ``bot`` sends live-chat messages and test sends (default: one built
    from ``RELOVE_BOT_TOKEN``; none without a token). ``scenarios`` and ``catalog``: the running
    bot's registries when it runs in this process (``relove demo``), so the console's *Reload*
    applies to the bot; by default the console loads its own copy from the settings' files."""
    from relove.web.routes import (
        ai_sessions,
        audience,
        auth,
        broadcasts,
        dashboard,
        links,
        segments,
        users,
    )
    from relove.web.routes import automations as automation_routes
    from relove.web.routes import (
        log as log_routes,
    )
    from relove.web.routes import (
        scenarios as scenario_routes,
    )
    from relove.web.routes import (
        settings as settings_routes,
    )
    from relove.web.routes import (
        webhooks as webhook_routes,
    )

    texts = {lang: ConsoleTexts.load(lang, settings.texts_dir) for lang in LANGUAGES}
    console = Console(
        settings=settings,
        sessions=sessions,
        texts=texts,
        renderer=Renderer([e.templates for e in extensions if e.templates is not None]),
        bot=bot if bot is not None else ConsoleBot.from_settings(settings),
        nav=[*NAV, *(e.nav for e in extensions), SETTINGS_NAV],
        chat_limiter=PerKeyLimiter(settings.console_chat_per_minute),
        clock=clock,
        read_sessions=read_sessions,
        scenarios=scenarios if scenarios is not None else own_scenarios(settings),
        catalog=catalog if catalog is not None else own_catalog(settings),
        shares_bot_files=scenarios is not None or catalog is not None,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await close_console(_app)

    app = FastAPI(title="relove console", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.console = console
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (auth, links, dashboard, audience, users, segments, broadcasts, log_routes,
                   settings_routes, ai_sessions, scenario_routes, webhook_routes,
                   automation_routes):
        app.include_router(module.router)
    for extension in extensions:
        app.include_router(extension.router)
    _error_pages(app)
    return app


def console_mount(settings: Settings, sessions: async_sessionmaker[AsyncSession],
                  **kwargs: Any) -> Mounted:
    """The console as the API app's mount at ``/`` (``relove serve``, ``relove demo``)."""
    from relove.api.app import Mounted

    app = create_console(settings, sessions, **kwargs)

    async def close() -> None:
        await close_console(app)

    return Mounted("/", app, close)


async def close_console(app: FastAPI) -> None:
    """Release what the console holds (the bot's HTTP connections). Runs at the end of the
    console's lifespan; an app that mounts the console calls it from its own lifespan."""
    console: Console = app.state.console
    if console.bot is not None:
        await console.bot.close()


def _error(request: Request, status: int, message: str) -> Response:
    console: Console = request.app.state.console
    admin = getattr(request.state, "admin", None)
    if is_htmx(request):
        return console.renderer.response(
            "error.html", base_context(request, admin, message=message, status=status),
            block="message", status=status)
    return console.renderer.response(
        "error.html", base_context(request, admin, message=message, status=status,
                                   admin_label=None),
        status=status)


def _error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = "/login"
        if request.method == "GET" and request.url.path not in ("/", "/login"):
            target += "?next=" + quote(request.url.path + (
                "?" + request.url.query if request.url.query else ""), safe="")
        if is_htmx(request):
            return HTMLResponse("", status_code=401, headers={"HX-Redirect": target})
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(target, status_code=303)
        return _error(request, 401, texts_for(request)("error.login"))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        key = "error.csrf" if exc.reason == "csrf" else "error.role"
        return _error(request, 403, texts_for(request)(key))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(ReloveError)
    async def _refused(request: Request, exc: ReloveError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"][1:]) if errors else ""
        message = texts_for(request)("error.invalid", field=where or "?")
        return _error(request, 422, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error(request, 404, texts_for(request)("error.not_found"))
        return _error(request, exc.status_code, str(exc.detail))
