"""Tracked button links: ``/l/{link}.{user}.{sig}`` records ``link.clicked`` and redirects to
the button's real URL.

Public (a recipient's click carries no session). A valid signature attributes the click to the
recipient; a forged or stale one still redirects (the destination is public, and a reader's
click must never break) but records nothing."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from relove.broadcasts.links import TrackedLink, parse_click, valid_signature
from relove.broadcasts.models import Broadcast
from relove.events import EventSource, record
from relove.events.catalog import LINK_CLICKED
from relove.web.deps import console_of

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/l/{click}")
async def follow(request: Request, click: str) -> Response:
    parsed = parse_click(click)
    if parsed is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    link_id, user_id, sig = parsed
    sessions = console_of(request).sessions
    async with sessions() as db:  # read, then write in a transaction of its own (SQLite)
        link = await db.get(TrackedLink, link_id)
        broadcast = await db.get(Broadcast, link.broadcast_id) if link else None
    if link is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    key = ((broadcast.options or {}).get("links") or {}).get("key") if broadcast else None
    if key and valid_signature(key, link_id, user_id, sig):
        try:
            async with sessions.begin() as db:
                await record(db, user_id, LINK_CLICKED, {
                    "url": link.url, "broadcast_id": link.broadcast_id, "link_id": link.id,
                }, source=EventSource.console)
        except SQLAlchemyError:  # the click must reach its destination anyway
            log.exception("recording a click on link %s failed", link_id)
    return RedirectResponse(link.url, status_code=302, headers={"Referrer-Policy": "no-referrer"})
