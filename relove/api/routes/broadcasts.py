"""``/broadcasts``: create (filter and template checked as in the CLI and the console), list,
status, preview for sample recipients, test-send to an admin, start / pause / resume / cancel,
and live progress as Server-Sent Events. Sending itself is the broadcast runner's (bot or
worker); these routes only change the broadcast's state, through the broadcasts service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, Field, StrictStr

from relove.api.deps import ContextDep, SessionDep, reader, writer
from relove.api.routing import ApiRoute
from relove.api.schemas import INT64_MAX, Strict, decode_id_cursor, encode_id_cursor
from relove.api.tokens import Principal
from relove.broadcasts import service
from relove.broadcasts.content import Button, MessageContent, Recipient
from relove.broadcasts.models import Broadcast, BroadcastStatus, MediaKind
from relove.db.models import User
from relove.errors import Conflict, InvalidInput
from relove.telegram.outcomes import Outcome

router = APIRouter(route_class=ApiRoute, tags=["broadcasts"])

FINAL = frozenset({BroadcastStatus.finished, BroadcastStatus.cancelled, BroadcastStatus.failed})
#: a progress stream ends after this long even if the broadcast is still running
PROGRESS_MAX_S = 3600.0
MAX_BUTTONS = 20



def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


#: a JSON string PostgreSQL can store (no NUL)
Str = Annotated[StrictStr, AfterValidator(_no_nul)]

BroadcastId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The broadcast's id.")]


# -- bodies ------------------------------------------------------------------------------------
class ButtonIn(Strict):
    text: Annotated[Str, Field(min_length=1, max_length=64)]
    url: Annotated[Str, Field(min_length=1, max_length=2000)]


class BroadcastIn(Strict):
    """A new broadcast: a Telegram-HTML Jinja2 template for the users a filter matches."""

    name: Annotated[Str, Field(min_length=1, max_length=200)]
    filter: Annotated[Str, Field(min_length=1, max_length=4000, description=(
        'The audience in the segment language, e.g. `city = "Москва"`; only active users '
        "receive it."))]  # fmt: skip
    text: Annotated[Str, Field(max_length=20_000, description=(
        "Telegram HTML with `{{ user.first_name }}`, `{{ markers.city | default(\"\") }}` …"))]
    media_kind: MediaKind | None = None
    media: Annotated[Str | None, Field(max_length=2000, description="A URL or file_id.")] = None
    buttons: Annotated[
        list[Annotated[list[ButtonIn], Field(min_length=1, max_length=8)]],
        Field(max_length=MAX_BUTTONS, description="Rows of URL buttons."),
    ] = []
    scheduled_at: datetime | None = Field(
        None, description="Start then (with a timezone) instead of staying a draft."
    )
    paid: bool = Field(False, description="Send with Telegram's paid broadcast tier.")
    rate: Annotated[float | None, Field(gt=0, le=1000, description="Messages per second.")] = None

    def content(self) -> MessageContent:
        rows = tuple(tuple(Button(b.text, b.url) for b in row) for row in self.buttons)
        if sum(len(r) for r in rows) > MAX_BUTTONS:
            raise InvalidInput(f"at most {MAX_BUTTONS} buttons")
        return MessageContent(
            text=self.text.replace("\r\n", "\n"), media_kind=self.media_kind,
            media=(self.media or "").strip() or None, buttons=rows,
        )  # fmt: skip


class TestSendIn(Strict):
    chat_id: Annotated[int, Field(ge=1, le=INT64_MAX, description=(
        "An admin's Telegram id (one of RELOVE_ADMIN_IDS); the message is personalised "
        "with that user's data when the bot knows them."))]  # fmt: skip


class PauseIn(Strict):
    reason: Annotated[Str | None, Field(max_length=500)] = None


# -- responses ---------------------------------------------------------------------------------
class BroadcastOut(BaseModel):
    id: int
    name: str
    status: Literal["draft", "scheduled", "running", "paused", "finished", "cancelled", "failed"]
    filter: str
    text: str
    media_kind: MediaKind | None = None
    media: str | None = None
    buttons: list[list[dict[str, str]]]
    paid: bool
    rate: float | None = None
    reason: str | None = None
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class BroadcastList(BaseModel):
    broadcasts: list[BroadcastOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class Status(BaseModel):
    """Where a broadcast stands: its deliveries per outcome, the current rate and ETA."""

    id: int
    name: str
    status: str
    targeted: int = Field(description="Recipients (before the start: users the filter matches).")
    sent: int
    blocked: int
    failed: int
    unknown: int
    pending: int
    sending: int
    done: int
    rate: float = Field(description="Messages per second over the last 10 s.")
    eta_seconds: float | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    final: bool = Field(description="The broadcast has ended (finished, cancelled, failed).")


class SampleRecipient(BaseModel):
    id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class Sample(BaseModel):
    recipient: SampleRecipient
    text: str = Field(description="The message as Telegram HTML, personalised.")
    media_kind: MediaKind | None = None
    media: str | None = None
    buttons: list[list[dict[str, str]]]


class PreviewOut(BaseModel):
    count: int = Field(description="Active users the filter matches now.")
    samples: list[Sample]


class TestSendOut(BaseModel):
    outcome: str = Field(description="sent, blocked, failed, unknown or retry_after.")
    message_id: int | None = None
    error: str | None = None


# -- rendering ---------------------------------------------------------------------------------
def _broadcast(b: Broadcast) -> dict[str, Any]:
    opts = b.options or {}
    return {
        "id": b.id, "name": b.name, "status": b.status.value, "filter": b.filter, "text": b.text,
        "media_kind": b.media_kind.value if b.media_kind else None, "media": b.media,
        "buttons": b.buttons or [], "paid": b.paid, "rate": opts.get("rate"),
        "reason": b.reason,
        **{k: (v.isoformat() if v else None) for k, v in (
            ("created_at", b.created_at), ("scheduled_at", b.scheduled_at),
            ("started_at", b.started_at), ("finished_at", b.finished_at))},
    }  # fmt: skip


def _status(stats: service.BroadcastStats) -> dict[str, Any]:
    data = stats.to_dict()
    data["done"] = stats.done
    data["final"] = BroadcastStatus(stats.status) in FINAL
    return data


async def _status_of(session: SessionDep, broadcast_id: int) -> JSONResponse:
    return JSONResponse(_status(await service.stats(session, broadcast_id)))


# -- routes ------------------------------------------------------------------------------------
@router.get("/broadcasts", response_model=BroadcastList, summary="List broadcasts (newest first)")
async def list_broadcasts(
    session: SessionDep,
    _: Annotated[Principal, reader("broadcasts:read")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    before = decode_id_cursor("b", cursor) if cursor else None
    rows = await service.list_broadcasts(session, limit, before_id=before)
    body: dict[str, Any] = {"broadcasts": [_broadcast(b) for b in rows]}
    if len(rows) == limit:
        body["next_cursor"] = encode_id_cursor("b", rows[-1].id)
    return JSONResponse(body)


@router.post(
    "/broadcasts",
    status_code=201,
    response_model=BroadcastOut,
    summary="Create a broadcast (a draft, or scheduled)",
    description="The filter is compiled and the template is rendered for sample recipients "
    "now: a bad filter, an unknown variable or HTML Telegram would refuse is a 422.",
)
async def create_broadcast(
    body: BroadcastIn,
    session: SessionDep,
    _: Annotated[Principal, writer("broadcasts:send")],
) -> Response:
    if body.scheduled_at is not None and body.scheduled_at.tzinfo is None:
        raise InvalidInput("scheduled_at needs a timezone, e.g. 2026-12-01T10:00:00+03:00")
    broadcast = await service.create_broadcast(
        session, name=body.name, filter_text=body.filter, content=body.content(),
        scheduled_at=body.scheduled_at, paid=body.paid, rate=body.rate,
    )  # fmt: skip
    await session.refresh(broadcast)
    return JSONResponse(_broadcast(broadcast), status_code=201)


@router.get("/broadcasts/{broadcast_id}", response_model=Status, summary="A broadcast's status")
async def get_status(
    broadcast_id: BroadcastId,
    session: SessionDep,
    _: Annotated[Principal, reader("broadcasts:read")],
) -> Response:
    return await _status_of(session, broadcast_id)


@router.get(
    "/broadcasts/{broadcast_id}/content",
    response_model=BroadcastOut,
    summary="A broadcast's message, audience filter and options",
)
async def get_broadcast(
    broadcast_id: BroadcastId,
    session: SessionDep,
    _: Annotated[Principal, reader("broadcasts:read")],
) -> Response:
    return JSONResponse(_broadcast(await service.get_broadcast(session, broadcast_id)))


@router.get(
    "/broadcasts/{broadcast_id}/preview",
    response_model=PreviewOut,
    summary="The message for sample recipients, and how many users it would reach now",
)
async def preview(
    broadcast_id: BroadcastId,
    session: SessionDep,
    _: Annotated[Principal, reader("broadcasts:read")],
    samples: Annotated[int, Query(ge=1, le=20)] = service.SAMPLES,
) -> Response:
    p = await service.preview(session, broadcast_id, samples)
    out = [
        {
            "recipient": {"id": r.id, "username": r.username, "first_name": r.first_name,
                          "last_name": r.last_name},
            "text": m.text,
            "media_kind": m.media_kind.value if m.media_kind else None,
            "media": m.media,
            "buttons": [[{"text": b.text, "url": b.url} for b in row] for row in m.buttons],
        }
        for r, m in p.samples
    ]  # fmt: skip
    return JSONResponse({"count": p.count, "samples": out})


@router.post(
    "/broadcasts/{broadcast_id}/test",
    response_model=TestSendOut,
    responses={502: {"model": TestSendOut, "description": "Telegram did not take the message."}},
    summary="Send the message to one admin now (a test)",
    description="Through the bot's rate limiter, ahead of broadcast messages. `chat_id` must "
    "be one of RELOVE_ADMIN_IDS. A message Telegram refuses is a 502 with the reason.",
)
async def test_send(
    broadcast_id: BroadcastId,
    body: TestSendIn,
    session: SessionDep,
    ctx: ContextDep,
    _: Annotated[Principal, writer("broadcasts:send")],
) -> Response:
    if body.chat_id not in ctx.settings.admin_ids:
        raise InvalidInput(f"{body.chat_id} is not an admin (RELOVE_ADMIN_IDS)")
    broadcast = await service.get_broadcast(session, broadcast_id)
    if ctx.bot is None:
        raise InvalidInput("no bot token is configured (RELOVE_BOT_TOKEN)")
    user = await session.get(User, body.chat_id)
    recipient = service.recipient_of(user) if user is not None else Recipient(id=body.chat_id)
    rendered = await service.template_of(broadcast).arender(recipient)
    result = await ctx.bot.send(body.chat_id, rendered)
    out = {"outcome": result.outcome.value, "message_id": result.message_id,
           "error": result.error}  # fmt: skip
    return JSONResponse(out, status_code=200 if result.outcome is Outcome.sent else 502)


async def _change(session: SessionDep, broadcast_id: int, verb: str, **kwargs: Any) -> Response:
    try:
        if verb == "start":
            await service.start_broadcast(session, broadcast_id, **kwargs)
        elif verb == "pause":
            await service.pause(session, broadcast_id, **kwargs)
        elif verb == "resume":
            await service.resume(session, broadcast_id)
        else:
            await service.cancel(session, broadcast_id)
    except service.StateConflict as e:
        raise Conflict(str(e)) from e
    return await _status_of(session, broadcast_id)


_STATE = {409: {"description": "The broadcast is not in a state that allows it."}}


@router.post(
    "/broadcasts/{broadcast_id}/start",
    response_model=Status,
    responses=_STATE,  # type: ignore[arg-type]
    summary="Start now (draft or scheduled → running)",
    description="The recipients are fixed now (active users matching the filter); a worker "
    "sends. With no recipients the broadcast finishes at once.",
)
async def start(
    broadcast_id: BroadcastId,
    session: SessionDep,
    principal: Annotated[Principal, writer("broadcasts:send")],
) -> Response:
    return await _change(session, broadcast_id, "start", actor=principal.actor)


@router.post(
    "/broadcasts/{broadcast_id}/pause",
    response_model=Status,
    responses=_STATE,  # type: ignore[arg-type]
    summary="Pause a running broadcast",
)
async def pause(
    broadcast_id: BroadcastId,
    session: SessionDep,
    principal: Annotated[Principal, writer("broadcasts:send")],
    body: PauseIn | None = None,
) -> Response:
    reason = (body.reason if body else None) or f"paused through the API ({principal.actor})"
    return await _change(session, broadcast_id, "pause", reason=reason)


@router.post(
    "/broadcasts/{broadcast_id}/resume",
    response_model=Status,
    responses=_STATE,  # type: ignore[arg-type]
    summary="Resume a paused broadcast where it stopped",
)
async def resume(
    broadcast_id: BroadcastId,
    session: SessionDep,
    _: Annotated[Principal, writer("broadcasts:send")],
) -> Response:
    return await _change(session, broadcast_id, "resume")


@router.post(
    "/broadcasts/{broadcast_id}/cancel",
    response_model=Status,
    responses=_STATE,  # type: ignore[arg-type]
    summary="Cancel for good (messages not sent yet stay unsent)",
)
async def cancel(
    broadcast_id: BroadcastId,
    session: SessionDep,
    _: Annotated[Principal, writer("broadcasts:send")],
) -> Response:
    return await _change(session, broadcast_id, "cancel")


@router.get(
    "/broadcasts/{broadcast_id}/progress",
    summary="Live progress as Server-Sent Events",
    description="A `progress` event (the status as JSON) every "
    "`RELOVE_API_PROGRESS_EVERY_SECONDS`; the stream ends after the event with "
    "`final: true` (the broadcast has ended), or after `max_seconds` (at most an hour).",
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "`event: progress` / `data: <status JSON>` events."}},
)
async def progress(
    request: Request,
    broadcast_id: BroadcastId,
    session: SessionDep,
    ctx: ContextDep,
    _: Annotated[Principal, reader("broadcasts:read")],
    max_seconds: Annotated[float, Query(
        gt=0, le=PROGRESS_MAX_S, description="End the stream after this long at the latest.",
    )] = PROGRESS_MAX_S,  # fmt: skip
) -> StreamingResponse:
    await service.get_broadcast(session, broadcast_id)  # a 404 before the stream starts
    every = ctx.settings.api_progress_every_seconds

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        while True:
            async with ctx.sessions() as s:
                data = _status(await service.stats(s, broadcast_id))
            yield f"event: progress\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            if data["final"] or loop.time() > deadline or await request.is_disconnected():
                return
            await asyncio.sleep(every)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
