"""``/users``: list (filter in the segment language, keyset cursor), get, change (atomic marker
and context operations, one transaction), batch changes, delete (= the bot's /forget)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from relove.api.deps import SessionDep, reader, writer
from relove.api.problems import problem_dict
from relove.api.responses import FastJSONResponse
from relove.api.routing import ApiRoute, single_read
from relove.api.schemas import (
    BatchResult,
    DocumentOps,
    User,
    UserBatch,
    UserId,
    UserList,
    UserPatch,
    decode_id_cursor,
    encode_id_cursor,
)
from relove.api.tokens import Principal
from relove.db.models import User as UserModel
from relove.errors import NotFound
from relove.events.catalog import EventSource
from relove.segments import count_users
from relove.segments.listing import (
    USER_FIELDS,
    fetch_user,
    page_users,
    parse_fields,
    user_row,
)
from relove.users import patch
from relove.users.lifecycle import delete_user

router = APIRouter(route_class=ApiRoute, tags=["users"])

API = EventSource.api
USER_COLUMNS = [UserModel.__table__.c[f] for f in USER_FIELDS]

FilterQ = Annotated[
    str | None,
    Query(
        alias="filter",
        max_length=10_000,
        description='A filter in the segment language, e.g. `city = "Москва" and vip`.',
    ),
]
FieldsQ = Annotated[
    str | None,
    Query(
        max_length=500,
        description="Comma-separated fields to return (id always): username, first_name, "
        "last_name, is_active, gender, markers, context, created_at, updated_at, last_seen_at.",
    ),
]


@router.get("/users", response_model=UserList, summary="List users (filter, keyset pages)")
async def list_users(
    session: SessionDep,
    _: Annotated[Principal, reader("users:read")],
    filter_text: FilterQ = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    fields: FieldsQ = None,
    count: Annotated[bool, Query(description="Also count all matching users.")] = False,
) -> Response:
    selected = parse_fields(fields)
    after = decode_id_cursor("u", cursor) if cursor else None
    flt = filter_text if filter_text and filter_text.strip() else None
    page = await page_users(session, flt, limit=limit, after_id=after, fields=selected)
    body: dict[str, Any] = {"users": page.users}
    if page.last_id is not None:
        body["next_cursor"] = encode_id_cursor("u", page.last_id)
    if count:
        body["count"] = await count_users(session, flt)
    return JSONResponse(body)


@router.get("/users/{user_id}", response_model=User, summary="Get a user")
@single_read
async def get_user(
    user_id: UserId,
    session: SessionDep,
    _: Annotated[Principal, reader("users:read")],
    fields: FieldsQ = None,
) -> Response:
    return JSONResponse(await fetch_user(session, user_id, parse_fields(fields)))


def _ops(doc: DocumentOps | None) -> patch.DocumentOps:
    if doc is None:
        return patch.NO_OPS
    return patch.DocumentOps(
        doc.set or patch.NO_OPS.set,
        doc.set_once or patch.NO_OPS.set_once,
        doc.unset or (),
        doc.inc or patch.NO_OPS.inc,
        doc.add or patch.NO_OPS.add,
        doc.remove or patch.NO_OPS.remove,
    )


def change_of(body: UserPatch) -> patch.UserChange:
    return patch.UserChange(_ops(body.markers), _ops(body.context), body.gender, body.is_active)


@router.patch(
    "/users/{user_id}",
    response_model=User,
    summary="Change a user's markers, context, gender or active state",
    description="Every operation is atomic in the database and all of one request commit "
    "together; each real change is recorded as an event (source `api`, actor: the token).",
)
async def patch_user(
    user_id: UserId,
    body: UserPatch,
    session: SessionDep,
    principal: Annotated[Principal, writer("users:write")],
) -> Response:
    change = change_of(body)
    row = await patch.apply_change_returning(
        session, user_id, change, USER_COLUMNS, source=API, actor=principal.actor
    )
    if row is not None:  # one statement changed it and returned it
        return JSONResponse(user_row(row, USER_FIELDS))
    await patch.apply_change(session, user_id, change, source=API, actor=principal.actor)
    return JSONResponse(await fetch_user(session, user_id))


@router.post(
    "/users:batch",
    response_model=BatchResult,
    summary="Change many users (≤ 1,000 items, per-item results)",
    description="Each item applies in full or not at all; items that fail are reported with "
    "their problem and the others still apply (`failed` > 0 means partial success).",
)
async def batch_users(
    body: UserBatch,
    session: SessionDep,
    principal: Annotated[Principal, writer("users:write")],
) -> Response:
    return await apply_user_batch(session, body, principal.actor)


async def apply_user_batch(session: AsyncSession, body: UserBatch, actor: str) -> Response:
    """The batch applied in the caller's session (the caller commits) and its answer; shared
    with the lean path (relove.api.lean)."""
    items = [(item.id, change_of(item)) for item in body.items]
    results = await patch.apply_batch(session, items, source=API, actor=actor)
    out: list[dict[str, Any]] = []
    for r in results:
        entry: dict[str, Any] = {"index": r.index, "id": r.user_id, "status": 200}
        if r.error is not None:
            entry["error"] = problem_dict(r.error)
            entry["status"] = entry["error"]["status"]
        out.append(entry)
    failed = sum(1 for r in results if r.error is not None)
    return FastJSONResponse({"succeeded": len(results) - failed, "failed": failed, "results": out})


@router.delete(
    "/users/{user_id}",
    status_code=204,
    summary="Forget a user (as /forget in the bot)",
    description="Deletes the user, their events and conversation; a `user.deleted` event keeps "
    "only the id.",
)
async def forget_user(
    user_id: UserId,
    session: SessionDep,
    principal: Annotated[Principal, writer("users:write")],
) -> Response:
    if not await delete_user(session, user_id, source=API, actor=principal.actor):
        raise NotFound(f"user {user_id} not found")
    return Response(status_code=204)
