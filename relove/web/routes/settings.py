"""Settings (owners): admins and their roles, API tokens (the API's token service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relove.admins import service as admins
from relove.admins.models import Role
from relove.api import tokens
from relove.errors import InvalidInput
from relove.web.audit import (
    ADMIN_ADDED,
    ADMIN_REMOVED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    actor_of,
    audit,
)
from relove.web.deps import AdminDep, DbDep, console_of, is_htmx, page, section

router = section(Role.owner, Role.owner)


async def _page(request: Request, admin: AdminDep, db: DbDep, error: str | None = None,
                status: int = 200, new_token: str | None = None) -> HTMLResponse:
    settings = console_of(request).settings
    return await page(request, db, admin, "settings.html", status=status, error=error,
                      admins=await admins.list_admins(db, settings),
                      tokens=await tokens.list_tokens(db), scopes=tokens.SCOPES,
                      new_token=new_token)


def _back(request: Request) -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": "/settings"})
    return RedirectResponse("/settings", status_code=303)


@router.get("/settings")
async def show(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    return await _page(request, admin, db)


@router.post("/settings/admins")
async def add_admin(request: Request, admin: AdminDep, db: DbDep,
                    user_id: Annotated[str, Form(max_length=30)],
                    role: Annotated[str, Form(max_length=20)],
                    note: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        try:
            uid = int(user_id.strip())
        except ValueError:
            raise InvalidInput(f"{user_id!r} is not a Telegram user id") from None
        if uid == admin.admin_id:
            raise InvalidInput("you cannot change your own role")
        added = await admins.add_admin(db, uid, role, note=note or None, by=admin.admin_id)
        await audit(db, admin.admin_id, ADMIN_ADDED, {"admin_id": uid, "role": added.role.value})
    except InvalidInput as e:
        await db.rollback()
        return await _page(request, admin, db, str(e), 422)
    await db.commit()
    return _back(request)


@router.post("/settings/tokens")
async def create_token(request: Request, admin: AdminDep, db: DbDep,
                       name: Annotated[str, Form(max_length=200)],
                       scopes: Annotated[list[str] | None, Form()] = None) -> Response:
    try:
        row, token = await tokens.create_token(db, name, scopes or [],
                                               created_by=actor_of(admin.admin_id))
        await audit(db, admin.admin_id, TOKEN_CREATED,
                    {"name": row.name, "key_id": row.key_id, "scopes": row.scope_list})
    except InvalidInput as e:
        await db.rollback()
        return await _page(request, admin, db, str(e), 422)
    await db.commit()
    return await _page(request, admin, db, new_token=token)  # shown this once only


@router.post("/settings/tokens/revoke")
async def revoke_token(request: Request, admin: AdminDep, db: DbDep,
                       key_id: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        row = await tokens.revoke_token(db, key_id)
        await audit(db, admin.admin_id, TOKEN_REVOKED, {"name": row.name, "key_id": row.key_id})
    except InvalidInput as e:
        await db.rollback()
        return await _page(request, admin, db, str(e), 422)
    await db.commit()
    return _back(request)


@router.post("/settings/admins/remove")
async def remove_admin(request: Request, admin: AdminDep, db: DbDep,
                       user_id: Annotated[int, Form()]) -> Response:
    settings = console_of(request).settings
    try:
        if user_id == admin.admin_id:
            raise InvalidInput("you cannot remove yourself")
        await admins.remove_admin(db, settings, user_id)
        await audit(db, admin.admin_id, ADMIN_REMOVED, {"admin_id": user_id})
    except InvalidInput as e:
        await db.rollback()
        return await _page(request, admin, db, str(e), 422)
    await db.commit()
    return _back(request)
