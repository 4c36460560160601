"""Typed dependencies of the console's routes: the database session, the signed-in admin, and
the ONE guard every console router carries — authentication, the role (by method: reading or
changing) and the CSRF token of every state-changing request.

A route declares ``admin: AdminDep`` and ``db: DbDep``; its router is built with
:func:`section`, so no route can forget the checks."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.models import Role
from relove.admins.sessions import Signed, resolve_session
from relove.db.models import User
from relove.web.context import Console
from relove.web.security import session_token
from relove.web.texts import LANGUAGES, ConsoleTexts

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
LANG_COOKIE = "relove_console_lang"


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, htmx requests get HX-Redirect."""


class Forbidden(Exception):
    """Signed in, but the role does not allow this (or the CSRF token is missing/wrong)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, opened lazily; the route commits what it changes."""
    async with console_of(request).sessions() as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session on the read replica when one is configured (else the primary), for pages
    that only list and count (they may lag the primary by the replica's delay)."""
    async with console_of(request).reader() as session:
        yield session


async def current_admin(request: Request) -> Signed:
    console = console_of(request)
    s = console.settings
    signed = await resolve_session(
        console.sessions, s, session_token(request),
        idle=timedelta(minutes=s.console_idle_minutes), now=console.now(),
    )
    if signed is None:
        raise LoginRequired()
    request.state.admin = signed
    return signed


DbDep = Annotated[AsyncSession, Depends(db_session)]
ReadDbDep = Annotated[AsyncSession, Depends(read_session)]
AdminDep = Annotated[Signed, Depends(current_admin)]


async def _csrf_token_of(request: Request) -> str:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def section(read: Role = Role.viewer, write: Role = Role.operator, **kwargs: Any) -> APIRouter:
    """A router whose every route requires a session; ``read`` for GET/HEAD, ``write`` (and a
    valid CSRF token) for anything else."""

    async def guard(request: Request, admin: AdminDep) -> None:
        safe = request.method in SAFE_METHODS
        if not admin.role.allows(read if safe else write):
            raise Forbidden("role")
        if not safe:
            token = await _csrf_token_of(request)
            if not token or not hmac.compare_digest(token, admin.csrf):
                raise Forbidden("csrf")

    return APIRouter(dependencies=[Depends(guard)], **kwargs)


def require(role: Role) -> Any:
    """A dependency for one route that needs more than its router's role."""

    async def check(admin: AdminDep) -> None:
        if not admin.role.allows(role):
            raise Forbidden("role")

    return Depends(check)


def texts_for(request: Request) -> ConsoleTexts:
    console = console_of(request)
    lang = request.cookies.get(LANG_COOKIE)
    if lang not in LANGUAGES:
        lang = console.settings.language if console.settings.language in LANGUAGES else "ru"
    return console.texts[lang]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def admin_name(db: AsyncSession, admin_id: int) -> str:
    user = await db.get(User, admin_id)
    return user.full_name if user is not None else str(admin_id)


def base_context(request: Request, admin: Signed | None, **values: Any) -> dict[str, Any]:
    console = console_of(request)
    texts = texts_for(request)
    nav = [n for n in console.nav if admin is not None and admin.role.allows(n.role)]
    return {
        "request": request,
        "t": texts,
        "lang": texts.language,
        "admin": admin,
        "admin_label": values.pop("admin_label", None),
        "csrf": admin.csrf if admin else "",
        "nav": nav,
        "path": request.url.path,
        "can_write": admin is not None and admin.role.allows(Role.operator),
        "is_owner": admin is not None and admin.role.allows(Role.owner),
        "roles": [r.value for r in Role],
        **values,
    }


async def page(
    request: Request, db: AsyncSession, admin: Signed, template: str, *,
    block: str | None = None, status: int = 200, **values: Any,
) -> HTMLResponse:
    """A whole page (the admin's name in the header), or one block of it for htmx."""
    label = None if block else await admin_name(db, admin.admin_id)
    context = base_context(request, admin, admin_label=label, **values)
    return console_of(request).renderer.response(template, context, block=block, status=status)
