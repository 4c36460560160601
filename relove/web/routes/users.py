"""The user card: identity, markers editor (typed values, every edit through the marker
service), context, broadcasts received, the conversation and live chat."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts.received import received_by
from relove.conversation.handoff import handoff_until
from relove.errors import InvalidInput, NotFound
from relove.events.timeline import timeline
from relove.users import service
from relove.users.lifecycle import get_user
from relove.users.paths import parse_path
from relove.web import livechat
from relove.web.audit import SOURCE, actor_of
from relove.web.deps import AdminDep, DbDep, console_of, page, section, texts_for
from relove.web.history import conversation
from relove.web.values import KINDS, kind_for_value, parse_typed, raw_for_value

router = section()
MAX_ID = 2**63 - 1
EVENTS_PAGE = 30
#: context keys shown in their own places (not in the raw context list)
SHOWN_APART = ("turns",)


def _user_id(user_id: int) -> int:
    if not 0 < user_id <= MAX_ID:
        raise NotFound(f"user {user_id} not found")
    return user_id


def _markers(markers: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v, "kind": kind_for_value(v), "raw": raw_for_value(v)}
            for k, v in sorted(markers.items())]


async def _card(db: AsyncSession, request: Request, user_id: int) -> dict[str, Any]:
    db.expire_all()  # the documents may have changed in SQL since this session loaded them
    user = await get_user(db, _user_id(user_id))
    context = dict(user.context or {})
    return {
        "user": user,
        "markers": _markers(dict(user.markers or {})),
        "context_items": sorted((k, v) for k, v in context.items() if k not in SHOWN_APART),
        "bubbles": await conversation(db, user.id),
        "events": await timeline(db, user.id, limit=EVENTS_PAGE),
        "handoff": handoff_until(context),
        "received": await received_by(db, user.id),
        "kinds": KINDS,
        "now": console_of(request).now(),
    }


@router.get("/users/{user_id}")
async def card(request: Request, user_id: int, admin: AdminDep, db: DbDep) -> HTMLResponse:
    return await page(request, db, admin, "user.html", **await _card(db, request, user_id),
                      marker_error=None, chat_error=None)


async def _markers_block(request: Request, db: AsyncSession, admin: Any, user_id: int,
                         error: str | None = None) -> HTMLResponse:
    data = await _card(db, request, user_id)
    return await page(request, db, admin, "user.html", block="markers", **data,
                      marker_error=error, chat_error=None, status=422 if error else 200)


@router.post("/users/{user_id}/markers")
async def set_marker(
    request: Request, user_id: int, admin: AdminDep, db: DbDep,
    key: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form()] = "string",
    value: Annotated[str, Form(max_length=60_000)] = "",
) -> HTMLResponse:
    try:
        parse_path(key.strip())
        await service.set_values(db, _user_id(user_id), {key.strip(): parse_typed(kind, value)},
                                 source=SOURCE, actor=actor_of(admin.admin_id))
    except NotFound:
        raise
    except InvalidInput as e:
        await db.rollback()
        return await _markers_block(request, db, admin, user_id, str(e))
    await db.commit()
    return await _markers_block(request, db, admin, user_id)


@router.post("/users/{user_id}/markers/unset")
async def unset_marker(
    request: Request, user_id: int, admin: AdminDep, db: DbDep,
    key: Annotated[str, Form(max_length=200)],
) -> HTMLResponse:
    try:
        await service.unset(db, _user_id(user_id), [key], source=SOURCE,
                            actor=actor_of(admin.admin_id))
    except NotFound:
        raise
    except InvalidInput as e:
        await db.rollback()
        return await _markers_block(request, db, admin, user_id, str(e))
    await db.commit()
    return await _markers_block(request, db, admin, user_id)


@router.get("/users/{user_id}/events")
async def events(request: Request, user_id: int, admin: AdminDep, db: DbDep,
                 cursor: Annotated[str, Query(max_length=200)]) -> HTMLResponse:
    """The next page of the timeline (infinite scroll)."""
    page_ = await timeline(db, _user_id(user_id), limit=EVENTS_PAGE, cursor=cursor)
    return await page(request, db, admin, "user.html", block="events", events=page_,
                      user={"id": user_id})


@router.get("/users/{user_id}/chat")
async def chat(request: Request, user_id: int, admin: AdminDep, db: DbDep) -> HTMLResponse:
    data = await _card(db, request, user_id)
    return await page(request, db, admin, "user.html", block="chat", **data, chat_error=None,
                      marker_error=None)


@router.post("/users/{user_id}/message")
async def send_message(
    request: Request, user_id: int, admin: AdminDep, db: DbDep,
    text: Annotated[str, Form(max_length=8000)],
) -> HTMLResponse:
    console = console_of(request)
    s = console.settings
    error = None
    if not console.chat_limiter.allow(admin.admin_id):
        error = texts_for(request)("user.chat_rate", limit=s.console_chat_per_minute)
    else:
        try:
            await livechat.send_as_bot(
                console.sessions, console.bot, _user_id(user_id), text, admin_id=admin.admin_id,
                handoff_minutes=s.handoff_minutes, keep_turns=s.history_turns,
                now=console.now())
        except NotFound:
            raise
        except InvalidInput as e:
            error = str(e)
    data = await _card(db, request, user_id)
    return await page(request, db, admin, "user.html", block="chat", **data, chat_error=error,
                      marker_error=None, status=422 if error else 200)
