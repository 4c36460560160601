"""AI sessions in the console (read-only, every role): the latest sessions, optionally of one
user, and one session's transcript and result."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from relove.conversation.ai_sessions import store
from relove.errors import NotFound
from relove.web.deps import AdminDep, DbDep, page, section

router = section()


@router.get("/ai-sessions")
async def index(request: Request, admin: AdminDep, db: DbDep,
                user: Annotated[int | None, Query(ge=1)] = None) -> HTMLResponse:  # fmt: skip
    rows = await store.list_sessions(db, user_id=user, limit=200)
    return await page(request, db, admin, "ai_sessions.html", sessions=rows, user_filter=user)


@router.get("/ai-sessions/{session_id}")
async def show(request: Request, admin: AdminDep, db: DbDep, session_id: int) -> HTMLResponse:
    row = await store.get(db, session_id)
    if row is None:
        raise NotFound(f"AI session {session_id} not found")
    turns = await store.turns(db, session_id)
    return await page(request, db, admin, "ai_session.html", s=row, turns=turns)
