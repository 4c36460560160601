"""One router per resource; :data:`ROUTERS` is the ordered list the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from relove.api.routes import broadcasts, bulk, me, users

ROUTERS: list[APIRouter] = [
    me.router,
    users.router,
    broadcasts.router,
    bulk.router,
]
