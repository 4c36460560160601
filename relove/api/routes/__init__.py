"""One router per resource; :data:`ROUTERS` is the ordered list the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from relove.api.routes import me, users, webhooks

ROUTERS: list[APIRouter] = [
    me.router,
    users.router,
    webhooks.router,
]
