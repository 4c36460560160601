"""The console's log: every console action, newest first, by whom (cursor pages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from relove.web.deps import AdminDep, ReadDbDep, page, section
from relove.web.history import console_log

router = section()


@router.get("/log")
async def show(request: Request, admin: AdminDep, db: ReadDbDep,
               admin_id: Annotated[int | None, Query(alias="admin", ge=1)] = None,
               cursor: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    entries = await console_log(db, admin_id=admin_id, cursor=cursor)
    return await page(request, db, admin, "log.html", block="rows" if cursor else None,
                      entries=entries, admin_filter=admin_id)
