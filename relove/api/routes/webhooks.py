"""``/webhooks``: endpoints (list, add — the secret shown once —, get, enable/disable, rotate
the secret), a test ping, deliveries and replays. The same service as ``relove webhooks``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from relove.api.deps import ContextDep, SessionDep, reader, writer
from relove.api.routing import ApiRoute
from relove.api.tokens import Principal
from relove.webhooks import service

router = APIRouter(route_class=ApiRoute, tags=["webhooks"])

EndpointId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class EndpointIn(BaseModel):
    url: str = Field(max_length=2000, description="Where to POST (http or https, public).")
    events: list[str] = Field(min_length=1, max_length=service.MAX_PATTERNS,
                              description="Event names or patterns: `user.*`, `marker.changed`.")
    filter: str | None = Field(default=None, max_length=10_000,
                               description="Only events of users matching this segment filter.")
    description: str | None = Field(default=None, max_length=500)


class EndpointPatch(BaseModel):
    enabled: bool


class ReplayIn(BaseModel):
    event_id: int | None = Field(default=None, ge=1)
    since: AwareDatetime | None = None


@router.get("/webhooks", summary="List webhook endpoints (never their secrets)")
async def list_webhooks(
    session: SessionDep, _: Annotated[Principal, reader("webhooks:read")]
) -> JSONResponse:
    return JSONResponse({"endpoints": [e.to_dict() for e in await service.list_endpoints(session)]})


@router.post("/webhooks", status_code=201,
             summary="Add an endpoint; the response carries its signing secret, once")
async def add_webhook(
    body: EndpointIn, session: SessionDep, ctx: ContextDep,
    principal: Annotated[Principal, writer("webhooks:write")],
) -> JSONResponse:
    created = await service.add_endpoint(
        session, body.url, body.events, filter_text=body.filter, description=body.description,
        actor=principal.actor, allow_private=ctx.settings.webhooks_allow_private,
    )
    await session.flush()
    return JSONResponse({**created.endpoint.to_dict(), "secret": created.secret},
                        status_code=201)


@router.get("/webhooks/{endpoint_id}", summary="Get an endpoint")
async def get_webhook(
    endpoint_id: EndpointId, session: SessionDep,
    _: Annotated[Principal, reader("webhooks:read")],
) -> JSONResponse:
    return JSONResponse((await service.get_endpoint(session, endpoint_id)).to_dict())


@router.patch("/webhooks/{endpoint_id}", summary="Enable or disable an endpoint")
async def patch_webhook(
    endpoint_id: EndpointId, body: EndpointPatch, session: SessionDep,
    _: Annotated[Principal, writer("webhooks:write")],
) -> JSONResponse:
    endpoint = await service.set_enabled(session, endpoint_id, body.enabled)
    return JSONResponse(endpoint.to_dict())


@router.post("/webhooks/{endpoint_id}/rotate-secret",
             summary="A new signing secret (shown once); the old one signs for a grace period")
async def rotate_webhook_secret(
    endpoint_id: EndpointId, session: SessionDep, ctx: ContextDep,
    _: Annotated[Principal, writer("webhooks:write")],
) -> JSONResponse:
    grace = timedelta(hours=ctx.settings.webhooks_rotation_hours)
    endpoint, secret = await service.rotate_secret(session, endpoint_id, grace=grace)
    return JSONResponse({**endpoint.to_dict(), "secret": secret})


@router.post("/webhooks/{endpoint_id}/test", status_code=202, summary="Queue a ping")
async def test_webhook(
    endpoint_id: EndpointId, session: SessionDep,
    _: Annotated[Principal, writer("webhooks:write")],
) -> JSONResponse:
    delivery = await service.send_test(session, endpoint_id)
    return JSONResponse({"webhook_id": delivery.msg_id}, status_code=202)


@router.get("/webhooks/{endpoint_id}/deliveries", summary="Deliveries, newest first")
async def list_webhook_deliveries(
    endpoint_id: EndpointId, session: SessionDep,
    _: Annotated[Principal, reader("webhooks:read")],
    failed: Annotated[bool, Query(description="Only those that gave up.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(ge=1, description="Deliveries older than this id.")]
    = None,
) -> JSONResponse:
    rows = await service.list_deliveries(session, endpoint_id, failed=failed, limit=limit,
                                         before_id=before)
    out: list[dict[str, Any]] = [service.delivery_dict(d) for d in rows]
    return JSONResponse({"deliveries": out})


@router.post("/webhooks/{endpoint_id}/replay", status_code=202,
             summary="Send one event, or every matching event since a time, again")
async def replay_webhook(
    endpoint_id: EndpointId, body: ReplayIn, session: SessionDep,
    _: Annotated[Principal, writer("webhooks:write")],
) -> JSONResponse:
    since: datetime | None = body.since
    count = await service.replay(session, endpoint_id, event_id=body.event_id, since=since)
    return JSONResponse({"queued": count}, status_code=202)
