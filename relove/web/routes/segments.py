"""Saved segments: the list (each count loaded on its own), create and edit with the live
count, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relove.errors import InvalidInput
from relove.segments.service import delete_segment, get_segment, list_segments, save_segment
from relove.web.audit import SEGMENT_DELETED, SEGMENT_SAVED, audit
from relove.web.deps import AdminDep, DbDep, is_htmx, page, section

router = section()


def _done(request: Request, target: str) -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/segments")
async def index(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    return await page(request, db, admin, "segments.html", segments=await list_segments(db))


@router.get("/segments/edit")
async def edit(request: Request, admin: AdminDep, db: DbDep,
               name: Annotated[str | None, Query(max_length=64)] = None,
               filter: Annotated[str, Query(max_length=4000)] = "") -> HTMLResponse:  # noqa: A002
    segment = await get_segment(db, name) if name else None
    return await page(request, db, admin, "segment_edit.html", segment=segment,
                      name=segment.name if segment else "",
                      filter=segment.filter if segment else filter,
                      description=(segment.description or "") if segment else "", error=None)


@router.post("/segments")
async def save(
    request: Request, admin: AdminDep, db: DbDep,
    name: Annotated[str, Form(max_length=200)],
    filter: Annotated[str, Form(max_length=4000)],  # noqa: A002
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        segment = await save_segment(db, name, filter,
                                     description=description.strip() or None)
        await audit(db, admin.admin_id, SEGMENT_SAVED,
                    {"name": segment.name, "filter": segment.filter})
    except InvalidInput as e:
        await db.rollback()
        return await page(request, db, admin, "segment_edit.html", status=422, segment=None,
                          name=name, filter=filter, description=description, error=str(e))
    await db.commit()
    return _done(request, "/segments")


@router.post("/segments/delete")
async def delete(request: Request, admin: AdminDep, db: DbDep,
                 name: Annotated[str, Form(max_length=200)]) -> Response:
    await delete_segment(db, name)
    await audit(db, admin.admin_id, SEGMENT_DELETED, {"name": name})
    await db.commit()
    return _done(request, "/segments")
