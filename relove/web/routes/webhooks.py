"""Webhooks (owners): endpoints with their failure state, add (the secret shown once), enable /
disable, rotate the secret (shown once), a test ping, the delivery log per endpoint and replay of
one event — all through :mod:`relove.webhooks.service`, as the CLI and the API do."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relove.admins.models import Role
from relove.errors import InvalidInput, NotFound
from relove.web.audit import (
    WEBHOOK_ADDED,
    WEBHOOK_DISABLED,
    WEBHOOK_ENABLED,
    WEBHOOK_REPLAYED,
    WEBHOOK_SECRET_ROTATED,
    WEBHOOK_TESTED,
    actor_of,
    audit,
)
from relove.web.deps import AdminDep, DbDep, console_of, is_htmx, page, section, texts_for
from relove.webhooks import service
from relove.webhooks.models import DESCRIPTION_MAX, URL_MAX

router = section(Role.owner, Role.owner)

#: deliveries shown per page of an endpoint's log
LOG_PAGE = 50


async def _list(request: Request, admin: AdminDep, db: DbDep, *, error: str | None = None,
                status: int = 200, form: dict[str, str] | None = None) -> HTMLResponse:
    return await page(request, db, admin, "webhooks.html", status=status, error=error,
                      endpoints=await service.list_endpoints(db),
                      failed=await service.failed_counts(db), form=form or {},
                      url_max=URL_MAX, description_max=DESCRIPTION_MAX)


async def _endpoint(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int, *,
                    failed: bool = False, before: int | None = None,
                    status: int = 200, **values: Any) -> HTMLResponse:
    endpoint = await service.get_endpoint(db, endpoint_id)
    values = {"message": None, "error": None, "new_secret": None, **values}
    deliveries = await service.list_deliveries(db, endpoint_id, failed=failed, limit=LOG_PAGE,
                                               before_id=before)
    return await page(request, db, admin, "webhook.html", status=status, endpoint=endpoint,
                      deliveries=deliveries, only_failed=failed,
                      more=deliveries[-1].id if len(deliveries) == LOG_PAGE else None,
                      rotation_hours=f"{console_of(request).settings.webhooks_rotation_hours:g}",
                      **values)


def _back(request: Request, endpoint_id: int, note: str = "") -> Response:
    target = f"/webhooks/{endpoint_id}" + (f"?done={note}" if note else "")
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/webhooks")
async def index(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    return await _list(request, admin, db)


@router.post("/webhooks")
async def add(request: Request, admin: AdminDep, db: DbDep,
              url: Annotated[str, Form(max_length=URL_MAX)],
              events: Annotated[str, Form(max_length=5000)],
              filter_text: Annotated[str, Form(alias="filter", max_length=5000)] = "",
              description: Annotated[str, Form(max_length=DESCRIPTION_MAX)] = "") -> Response:
    settings = console_of(request).settings
    try:
        created = await service.add_endpoint(
            db, url, events, filter_text=filter_text or None, description=description or None,
            actor=actor_of(admin.admin_id), allow_private=settings.webhooks_allow_private)
        endpoint = created.endpoint
        await audit(db, admin.admin_id, WEBHOOK_ADDED,
                    {"endpoint_id": endpoint.id, "url": endpoint.url,
                     "events": list(endpoint.events)})
    except InvalidInput as e:  # FilterError and AddressRefused are InvalidInput too
        await db.rollback()
        form = {"url": url, "events": events, "filter": filter_text, "description": description}
        return await _list(request, admin, db, error=str(e), status=422, form=form)
    await db.commit()
    # the result page is the only place the secret is ever shown
    return await _endpoint(request, admin, db, endpoint.id, new_secret=created.secret,
                           message=texts_for(request)("webhooks.added"))


@router.get("/webhooks/{endpoint_id}")
async def show(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int,
               failed: Annotated[bool, Query()] = False,
               before: Annotated[int | None, Query(ge=1)] = None,
               done: Annotated[str, Query(max_length=20)] = "") -> HTMLResponse:
    t = texts_for(request)
    message = t(f"webhooks.done.{done}") if done in _DONE else None
    return await _endpoint(request, admin, db, endpoint_id, failed=failed, before=before,
                           message=message)


_DONE = ("enabled", "disabled", "tested", "replayed")


async def _set_enabled(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int,
                       enabled: bool) -> Response:
    endpoint = await service.set_enabled(db, endpoint_id, enabled)
    await audit(db, admin.admin_id, WEBHOOK_ENABLED if enabled else WEBHOOK_DISABLED,
                {"endpoint_id": endpoint.id, "url": endpoint.url})
    await db.commit()
    return _back(request, endpoint_id, "enabled" if enabled else "disabled")


@router.post("/webhooks/{endpoint_id}/enable")
async def enable(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int) -> Response:
    return await _set_enabled(request, admin, db, endpoint_id, True)


@router.post("/webhooks/{endpoint_id}/disable")
async def disable(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int) -> Response:
    return await _set_enabled(request, admin, db, endpoint_id, False)


@router.post("/webhooks/{endpoint_id}/rotate")
async def rotate(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int) -> Response:
    hours = console_of(request).settings.webhooks_rotation_hours
    endpoint, secret = await service.rotate_secret(db, endpoint_id, grace=timedelta(hours=hours))
    await audit(db, admin.admin_id, WEBHOOK_SECRET_ROTATED,
                {"endpoint_id": endpoint.id, "grace_hours": hours})
    await db.commit()
    return await _endpoint(request, admin, db, endpoint_id, new_secret=secret,
                           message=texts_for(request)("webhooks.rotated", hours=f"{hours:g}"))


@router.post("/webhooks/{endpoint_id}/test")
async def test(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int) -> Response:
    delivery = await service.send_test(db, endpoint_id)
    await audit(db, admin.admin_id, WEBHOOK_TESTED,
                {"endpoint_id": endpoint_id, "webhook_id": delivery.msg_id})
    await db.commit()
    return _back(request, endpoint_id, "tested")


@router.post("/webhooks/{endpoint_id}/replay")
async def replay(request: Request, admin: AdminDep, db: DbDep, endpoint_id: int,
                 event_id: Annotated[str, Form(max_length=30)]) -> Response:
    try:
        try:
            event = int(event_id.strip())
        except ValueError:
            raise InvalidInput(texts_for(request)("webhooks.bad_event", value=event_id)) from None
        count = await service.replay(db, endpoint_id, event_id=event)
        await audit(db, admin.admin_id, WEBHOOK_REPLAYED,
                    {"endpoint_id": endpoint_id, "event_id": event, "queued": count})
    except (InvalidInput, NotFound) as e:
        await db.rollback()
        return await _endpoint(request, admin, db, endpoint_id, error=str(e), status=422)
    await db.commit()
    return _back(request, endpoint_id, "replayed")
