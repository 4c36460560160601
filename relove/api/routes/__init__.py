"""One router per resource; :data:`ROUTERS` is the ordered list the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from relove.api.routes import analytics, broadcasts, bulk, events, me, segments, users

ROUTERS: list[APIRouter] = [
    me.router,
    users.router,
    events.router,
    segments.router,
    analytics.router,
    broadcasts.router,
    bulk.router,
]
