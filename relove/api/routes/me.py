"""``GET /me``: the calling token (name, scopes, limits) — a cheap check that a token works."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel

from relove.api.deps import ContextDep, reader
from relove.api.routing import ApiRoute
from relove.api.tokens import Principal

router = APIRouter(route_class=ApiRoute, tags=["tokens"])


class Me(BaseModel):
    name: str
    key_id: str
    scopes: list[str]
    rate_limit: float
    rate_burst: int


@router.get("/me", response_model=Me, summary="The calling token")
async def get_me(principal: Annotated[Principal, reader()], ctx: ContextDep) -> Me:
    return Me(
        name=principal.name,
        key_id=principal.key_id,
        scopes=sorted(principal.scopes),
        rate_limit=principal.rate_limit or ctx.settings.api_rate_limit,
        rate_burst=principal.rate_burst or ctx.settings.api_rate_burst,
    )
