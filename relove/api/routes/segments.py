"""``/segments``: saved segments (named filters) — list, get, create, change, delete — and
``POST /segments:count``: how many users a filter matches, or the filter's error with its
position (the console's live count)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relove.api.deps import SessionDep, reader, writer
from relove.api.routing import ApiRoute
from relove.api.schemas import Strict
from relove.api.tokens import Principal
from relove.errors import Conflict, NotFound
from relove.segments import count_users, delete_segment, get_segment, list_segments, save_segment
from relove.segments.models import SEGMENT_NAME_MAX, Segment

router = APIRouter(route_class=ApiRoute, tags=["segments"])

FILTER_MAX = 10_000
DESCRIPTION_MAX = 1000

FilterText = Annotated[
    str,
    Field(min_length=1, max_length=FILTER_MAX,
          description='A filter in the segment language, e.g. `city = "Москва" and vip`.'),
]  # fmt: skip
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX)]
SegmentName = Annotated[
    str,
    Path(min_length=1, max_length=SEGMENT_NAME_MAX, description="The segment's name."),
]


class SegmentOut(BaseModel):
    name: str
    filter: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    count: int | None = Field(None, description="Matching users (with `count=true`).")


class SegmentList(BaseModel):
    segments: list[SegmentOut]


class SegmentCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=SEGMENT_NAME_MAX)]
    filter: FilterText
    description: Description | None = None


class SegmentChange(Strict):
    filter: FilterText | None = None
    description: Description | None = None


class CountRequest(Strict):
    filter: Annotated[str, Field(max_length=FILTER_MAX)] | None = Field(
        None, description="A filter in the segment language; empty or absent: all users."
    )


class CountResult(BaseModel):
    count: int


def _out(seg: Segment, count: int | None = None) -> dict[str, object]:
    body = seg.to_dict()
    if count is not None:
        body["count"] = count
    return body


async def _save(
    session: AsyncSession, name: str, filter_text: str, description: str | None
) -> Segment:
    try:
        async with session.begin_nested():
            return await save_segment(session, name, filter_text, description=description)
    except IntegrityError:  # another request created the same name meanwhile
        raise Conflict(f"segment {name.strip()!r} already exists") from None


@router.get("/segments", response_model=SegmentList, summary="List saved segments")
async def segments_list(
    session: SessionDep, _: Annotated[Principal, reader("segments:read")]
) -> Response:
    return JSONResponse({"segments": [_out(s) for s in await list_segments(session)]})


@router.post(
    "/segments:count",
    response_model=CountResult,
    summary="Count the users a filter matches",
    description="A filter that does not parse or type-check is a 422 problem with `code` "
    "`invalid_filter` and the 1-based `position` of the error.",
)
async def segments_count(
    body: CountRequest, session: SessionDep, _: Annotated[Principal, writer("segments:read")]
) -> Response:
    flt = body.filter if body.filter and body.filter.strip() else None
    return JSONResponse({"count": await count_users(session, flt)})


@router.post(
    "/segments",
    response_model=SegmentOut,
    status_code=201,
    summary="Save a new segment",
    description="The filter must be valid and every segment it refers to must exist; a name "
    "already taken is a 409.",
)
async def segments_create(
    body: SegmentCreate, session: SessionDep, _: Annotated[Principal, writer("segments:write")]
) -> Response:
    try:
        await get_segment(session, body.name.strip())
    except NotFound:
        pass
    else:
        raise Conflict(f"segment {body.name.strip()!r} already exists")
    seg = await _save(session, body.name, body.filter, body.description)
    return JSONResponse(_out(seg), status_code=201)


@router.get("/segments/{name:path}", response_model=SegmentOut, summary="Get a saved segment")
async def segments_get(
    name: SegmentName,
    session: SessionDep,
    _: Annotated[Principal, reader("segments:read")],
    count: bool = False,
) -> Response:
    seg = await get_segment(session, name)
    return JSONResponse(_out(seg, await count_users(session, seg.filter) if count else None))


@router.patch(
    "/segments/{name:path}",
    response_model=SegmentOut,
    summary="Change a segment's filter or description",
    description="Refused (422) when the new filter is invalid or would break a segment that "
    "uses this one.",
)
async def segments_change(
    name: SegmentName,
    body: SegmentChange,
    session: SessionDep,
    _: Annotated[Principal, writer("segments:write")],
) -> Response:
    seg = await get_segment(session, name)
    seg = await _save(session, seg.name, body.filter or seg.filter, body.description)
    return JSONResponse(_out(seg))


@router.delete(
    "/segments/{name:path}",
    status_code=204,
    summary="Delete a saved segment",
    description="Refused (422) while another segment refers to it.",
)
async def segments_delete(
    name: SegmentName, session: SessionDep, _: Annotated[Principal, writer("segments:write")]
) -> Response:
    await delete_segment(session, name)
    return Response(status_code=204)
