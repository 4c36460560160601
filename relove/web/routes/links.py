"""Tracked button links: ``/l/{link}.{user}.{sig}`` redirects to the button's real URL.

Public (a recipient's click carries no session). A valid signature attributes the click to the
recipient; a forged or stale one still redirects (the destination is public, and a reader's
click must never break) but is not counted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from relove.broadcasts.links import TrackedLink, parse_click, valid_signature
from relove.broadcasts.models import Broadcast
from relove.web.deps import DbDep

router = APIRouter()


@router.get("/l/{click}")
async def follow(request: Request, click: str, db: DbDep) -> Response:
    parsed = parse_click(click)
    if parsed is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    link_id, user_id, sig = parsed
    link = await db.get(TrackedLink, link_id)
    if link is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    broadcast = await db.get(Broadcast, link.broadcast_id)
    key = ((broadcast.options or {}).get("links") or {}).get("key") if broadcast else None
    request.state.click = (link, user_id) if key and valid_signature(key, link_id, user_id,
                                                                      sig) else None
    return RedirectResponse(link.url, status_code=302, headers={"Referrer-Policy": "no-referrer"})
