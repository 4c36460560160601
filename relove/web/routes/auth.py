"""Logging in and out: the one-time link from the bot's /login (or `relove console link`), the
Telegram Login Widget, logout, and the language switch."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.login import LoginRefused, consume_login_token, use_widget_answer
from relove.admins.models import Role
from relove.admins.service import role_of
from relove.admins.sessions import close_session, open_session
from relove.web.audit import ADMIN_LOGGED_IN, ADMIN_LOGGED_OUT, audit
from relove.web.deps import (
    LANG_COOKIE,
    AdminDep,
    DbDep,
    base_context,
    console_of,
    current_admin,
    section,
    texts_for,
)
from relove.web.security import (
    CSP_WIDGET,
    clear_session_cookie,
    is_https,
    set_session_cookie,
)
from relove.web.texts import LANGUAGES

router = APIRouter()
signed_in = section(Role.viewer, Role.viewer)
WIDGET_FIELDS = ("id", "first_name", "last_name", "username", "photo_url", "auth_date", "hash")


def _safe_next(value: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_page(request: Request, status: int = 200, error: str | None = None,
                next_path: str = "/") -> Response:
    console = console_of(request)
    widget = console.settings.console_widget_bot
    headers = {"Content-Security-Policy": CSP_WIDGET} if widget else None
    context = base_context(request, None, error=error, widget_bot=widget, next_path=next_path,
                           widget_url=f"{console.settings.console_base_url}/auth/telegram")
    return console.renderer.response("login.html", context, status=status, headers=headers)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    try:
        await current_admin(request)
    except Exception:  # noqa: BLE001 - not signed in: show the page
        return _login_page(request, next_path=_safe_next(next))
    return RedirectResponse(_safe_next(next), status_code=303)


@router.get("/auth/link/{token}")
async def link_page(request: Request, token: str) -> Response:
    """Shows a button; only its POST logs in (a link preview or prefetch opens nothing)."""
    context = base_context(request, None, token=token)
    return console_of(request).renderer.response("link.html", context)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    here = urlsplit(str(request.base_url))
    there = urlsplit(origin)
    return (there.scheme, there.netloc) == (here.scheme, here.netloc) or origin == (
        console_of(request).settings.console_base_url)


async def _signed_in_response(
    request: Request, db: AsyncSession, admin_id: int, via: str, next_path: str = "/"
) -> Response:
    console = console_of(request)
    s = console.settings
    if await role_of(db, s, admin_id) is None:
        await db.rollback()
        return _login_page(request, 403, texts_for(request)("login.not_admin"))
    lifetime = timedelta(days=s.console_session_days)
    token, _ = await open_session(db, admin_id, via=via, lifetime=lifetime, now=console.now())
    await audit(db, admin_id, ADMIN_LOGGED_IN, {"via": via})
    await db.commit()
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    set_session_cookie(response, token, secure=is_https(request, s.console_url),
                       max_age=int(lifetime.total_seconds()))
    return response


@router.post("/auth/link/{token}")
async def link_login(request: Request, token: str, db: DbDep) -> Response:
    if not _same_origin(request):
        return _login_page(request, 403, texts_for(request)("error.csrf"))
    try:
        admin_id = await consume_login_token(db, token, now=console_of(request).now())
    except LoginRefused:
        await db.rollback()
        return _login_page(request, 400, texts_for(request)("login.link_used"))
    return await _signed_in_response(request, db, admin_id, "link")


@router.get("/auth/telegram")
async def widget_login(request: Request, db: DbDep) -> Response:
    console = console_of(request)
    token = console.settings.token
    if not console.settings.console_widget_bot or not token:
        return _login_page(request, 404, texts_for(request)("login.widget_off"))
    data = {k: v for k, v in request.query_params.items() if k in WIDGET_FIELDS}
    try:
        admin_id = await use_widget_answer(db, data, token, now=console.now())
    except LoginRefused as e:
        await db.rollback()
        return _login_page(request, 400, str(e))
    return await _signed_in_response(request, db, admin_id, "widget")


@signed_in.post("/logout")
async def logout(request: Request, admin: AdminDep, db: DbDep) -> Response:
    await close_session(db, admin.session_id)
    await audit(db, admin.admin_id, ADMIN_LOGGED_OUT)
    await db.commit()
    response: Response = RedirectResponse("/login", status_code=303)
    if request.headers.get("HX-Request") == "true":
        response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    clear_session_cookie(response)
    return response


@router.get("/lang/{code}")
async def switch_language(request: Request, code: str, back: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(back), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, path="/", samesite="strict",
                            httponly=True)
    return response


router.include_router(signed_in)
