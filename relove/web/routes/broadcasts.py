"""Broadcasts: list, compose (variables cheat sheet, buttons, photo, preview for sample
recipients), test-send to me, schedule, start, live progress (SSE), pause/resume/cancel,
results and tracked links. Sending itself is the broadcast runner's (bot or worker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from relove.analytics.keys import KeyStats
from relove.broadcasts import service
from relove.broadcasts.content import MessageTemplate, Recipient
from relove.broadcasts.models import BroadcastStatus
from relove.db.models import User
from relove.errors import InvalidInput
from relove.telegram.outcomes import Outcome
from relove.web.audit import (
    BROADCAST_CANCELLED,
    BROADCAST_CREATED,
    BROADCAST_PAUSED,
    BROADCAST_REQUEUED,
    BROADCAST_RESUMED,
    BROADCAST_SCHEDULED,
    BROADCAST_TEST_SENT,
    actor_of,
    audit,
)
from relove.web.compose import ComposeForm, buttons_text, track_links
from relove.web.deps import AdminDep, DbDep, console_of, is_htmx, page, section, texts_for
from relove.web.links_report import conversion, link_report
from relove.web.preview import telegram_html
from relove.web.routes.audience import _keys

router = section()
FINAL = (BroadcastStatus.finished, BroadcastStatus.cancelled, BroadcastStatus.failed)
ACTIONS = {
    BroadcastStatus.draft: ("start", "schedule", "cancel"),
    BroadcastStatus.scheduled: ("start", "cancel"),
    BroadcastStatus.running: ("pause", "cancel"),
    BroadcastStatus.paused: ("resume", "cancel"),
}
PROGRESS_EVERY_S = 1.0
PROGRESS_MAX_S = 3600.0
VARIABLES = ["{{ user.first_name }}", "{{ user.full_name }}", "{{ user.username }}",
             "{{ user.id }}", '{{ markers.city | default("") }}',
             '{% if markers.VIP %}…{% endif %}']


def _form(name: str, filter_text: str, text: str, buttons: str, photo: str, schedule: str,
          track: str | None) -> ComposeForm:
    return ComposeForm(name=name, filter=filter_text, text=text, buttons=buttons, photo=photo,
                       schedule=schedule, track=track is not None)


async def _samples(template: MessageTemplate,
                   recipients: list[Recipient]) -> list[dict[str, Any]]:  # fmt: skip
    rendered = await template.validate(recipients)  # off the event loop past 5 ms
    return [{"recipient": r, "html": telegram_html(m.text), "buttons": m.buttons}
            for r, m in zip(recipients, rendered, strict=True)]


async def _compose_page(request: Request, db: DbDep, admin: AdminDep, form: ComposeForm,
                        error: str | None = None, status: int = 200) -> HTMLResponse:
    keys: KeyStats = await _keys(request)
    settings = console_of(request).settings
    return await page(request, db, admin, "broadcast_new.html", form=form, error=error,
                      status=status, variables=VARIABLES, marker_keys=[k.key for k in keys.keys],
                      can_track=settings.console_url is not None)


@router.get("/broadcasts")
async def index(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    return await page(request, db, admin, "broadcasts.html",
                      broadcasts=await service.list_broadcasts(db, 100))


@router.get("/broadcasts/new")
async def new(request: Request, admin: AdminDep, db: DbDep,
              filter: Annotated[str, Query(max_length=4000)] = "",  # noqa: A002
              copy: int | None = None) -> HTMLResponse:
    form = ComposeForm(filter=filter or "is_active")
    if copy is not None:
        b = await service.get_broadcast(db, copy)
        form = ComposeForm(name=b.name, filter=b.filter, text=b.text,
                           buttons=buttons_text(b.buttons), photo=b.media or "",
                           track="links" in (b.options or {}))
    return await _compose_page(request, db, admin, form)


FormText = Annotated[str, Form(max_length=20_000)]
FormLine = Annotated[str, Form(max_length=4000)]


@router.post("/broadcasts/preview")
async def preview(request: Request, admin: AdminDep, db: DbDep,
                  filter: FormLine = "", text: FormText = "",  # noqa: A002
                  buttons: FormText = "", photo: FormLine = "") -> HTMLResponse:
    form = ComposeForm(filter=filter, text=text, buttons=buttons, photo=photo)
    try:
        template = MessageTemplate(form.content())
        where = await service.audience(db, form.filter)
        samples = await _samples(template, await service.sample_recipients(db, where))
        error = None
    except InvalidInput as e:
        samples, error = [], str(e)
    return await page(request, db, admin, "broadcast_new.html", block="preview",
                      samples=samples, error=error, status=422 if error else 200)


@router.post("/broadcasts")
async def create(
    request: Request, admin: AdminDep, db: DbDep, name: FormLine = "",
    filter: FormLine = "", text: FormText = "", buttons: FormText = "",  # noqa: A002
    photo: FormLine = "", schedule: FormLine = "", track: Annotated[str | None, Form()] = None,
) -> Response:
    console = console_of(request)
    form = _form(name, filter, text, buttons, photo, schedule, track)
    try:
        broadcast = await service.create_broadcast(
            db, name=form.name, filter_text=form.filter.strip(), content=form.content(),
            scheduled_at=form.scheduled_at(), created_by=admin.admin_id)
        if form.track and console.settings.console_url:
            await track_links(db, broadcast, console.settings.console_base_url)
        await audit(db, admin.admin_id, BROADCAST_CREATED, {
            "broadcast_id": broadcast.id, "name": broadcast.name, "filter": broadcast.filter})
    except InvalidInput as e:
        await db.rollback()
        return await _compose_page(request, db, admin, form, str(e), 422)
    await db.commit()
    target = f"/broadcasts/{broadcast.id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/broadcasts/{broadcast_id}")
async def detail(request: Request, broadcast_id: int, admin: AdminDep, db: DbDep,
                 message: str | None = None) -> HTMLResponse:
    broadcast = await service.get_broadcast(db, broadcast_id)
    stats = None
    samples: list[dict[str, Any]] = []
    error = None
    if broadcast.status in (BroadcastStatus.draft, BroadcastStatus.scheduled):
        try:
            where = await service.audience(db, broadcast.filter)
            samples = await _samples(service.template_of(broadcast),
                                     await service.sample_recipients(db, where))
        except InvalidInput as e:
            error = str(e)
    else:
        stats = await service.stats(db, broadcast_id)
    return await page(
        request, db, admin, "broadcast.html", b=broadcast, stats=stats, samples=samples,
        error=error, actions=ACTIONS.get(broadcast.status, ()), final=broadcast.status in FINAL,
        links=await link_report(db, broadcast),
        audience_filter=f"is_active and ({broadcast.filter})",
        content_html=_safe_html(broadcast.text), buttons=broadcast.buttons or [],
        message=message)


def _safe_html(text: str) -> Any:
    try:
        return telegram_html(text)
    except InvalidInput:
        return text  # a template whose raw text is not HTML yet ({% if %} …): shown as text


@router.get("/broadcasts/{broadcast_id}/conversion")
async def link_conversion(request: Request, broadcast_id: int, admin: AdminDep, db: DbDep,
                          kind: str = "marker",
                          name: Annotated[str, Query(max_length=200)] = "",
                          days: Annotated[int, Query(ge=1, le=365)] = 7) -> HTMLResponse:
    broadcast = await service.get_broadcast(db, broadcast_id)
    try:
        result = await conversion(db, broadcast, kind=kind, name=name, days=days)
        error = None
    except InvalidInput as e:
        result, error = None, str(e)
    return await page(request, db, admin, "broadcast.html", block="conversion", conv=result,
                      conv_error=error, conv_days=days, status=422 if error else 200)


@router.post("/broadcasts/{broadcast_id}/test")
async def test_send(request: Request, broadcast_id: int, admin: AdminDep,
                    db: DbDep) -> HTMLResponse:
    console = console_of(request)
    t = texts_for(request)
    broadcast = await service.get_broadcast(db, broadcast_id)
    me = await db.get(User, admin.admin_id)
    recipient = service.recipient_of(me) if me is not None else Recipient(id=admin.admin_id)
    if console.bot is None:
        message, ok = t("broadcast.no_bot"), False
    else:
        try:
            rendered = await service.template_of(broadcast).arender(recipient)
            result = await console.bot.send(admin.admin_id, rendered)
            ok = result.outcome is Outcome.sent
            if ok:
                async with console.sessions.begin() as session:
                    await audit(session, admin.admin_id, BROADCAST_TEST_SENT,
                                {"broadcast_id": broadcast_id})
            message = t("broadcast.test_sent") if ok else t(
                "broadcast.test_failed", error=result.error or result.outcome.value)
        except InvalidInput as e:
            message, ok = str(e), False
    return await page(request, db, admin, "broadcast.html", block="flash", message=message,
                      ok=ok, status=200 if ok else 422)


@router.post("/broadcasts/{broadcast_id}/{action}")
async def change(request: Request, broadcast_id: int, action: str, admin: AdminDep, db: DbDep,
                 at: Annotated[str, Form(max_length=100)] = "") -> Response:
    t = texts_for(request)
    props: dict[str, Any] = {"broadcast_id": broadcast_id}
    try:
        if action == "start":  # the service records broadcast.started with the actor
            await service.start_broadcast(db, broadcast_id, actor=actor_of(admin.admin_id))
            name = None
        elif action == "pause":
            await service.pause(db, broadcast_id,
                                reason=t("broadcast.paused_by", who=admin.admin_id))
            name = BROADCAST_PAUSED
        elif action == "resume":
            await service.resume(db, broadcast_id)
            name = BROADCAST_RESUMED
        elif action == "cancel":
            await service.cancel(db, broadcast_id)
            name = BROADCAST_CANCELLED
        elif action == "schedule":
            when = ComposeForm(schedule=at).scheduled_at()
            if when is None:
                raise InvalidInput(t("broadcast.schedule_needed"))
            await service.schedule(db, broadcast_id, when)
            name, props["at"] = BROADCAST_SCHEDULED, when.isoformat()
        elif action == "resend-unknown":
            props["requeued"] = await service.resend_unknown(db, broadcast_id)
            name = BROADCAST_REQUEUED
        else:
            return Response(status_code=404)
        if name is not None:
            await audit(db, admin.admin_id, name, props)
    except InvalidInput as e:
        await db.rollback()
        return await page(request, db, admin, "broadcast.html", block="flash", message=str(e),
                          ok=False, status=422)
    await db.commit()
    target = f"/broadcasts/{broadcast_id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/broadcasts/{broadcast_id}/progress")
async def progress(request: Request, broadcast_id: int, admin: AdminDep) -> StreamingResponse:
    """Server-Sent Events: one ``progress`` event per second with the stats as JSON, a last
    one with ``final: true`` when the broadcast has ended."""
    console = console_of(request)
    t = texts_for(request)
    async with console.sessions() as session:
        await service.get_broadcast(session, broadcast_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROGRESS_MAX_S
        while True:
            async with console.sessions() as session:
                stats = await service.stats(session, broadcast_id)
            data = stats.to_dict()
            data["done"] = stats.done
            data["final"] = stats.status in {s.value for s in FINAL}
            data["eta"] = _eta(stats.eta_seconds)
            data["status_label"] = t(f"broadcast.status.{stats.status}")
            yield f"event: progress\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            if data["final"] or loop.time() > deadline or await request.is_disconnected():
                return
            await asyncio.sleep(PROGRESS_EVERY_S)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _eta(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
