"""Automations (every role reads; operators pause and resume): the automations of
``RELOVE_AUTOMATIONS_FILE`` with their trigger and steps, paused or not, runs by state and the
latest runs — through :mod:`relove.automations.service`, as the CLI does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relove.automations import service
from relove.automations.definition import (
    Automation,
    AutomationFile,
    AutomationFileError,
    Step,
    load_automations,
    scenario_flow_ids,
)
from relove.errors import NotFound
from relove.web.audit import AUTOMATION_PAUSED, AUTOMATION_RESUMED, audit
from relove.web.deps import AdminDep, DbDep, console_of, is_htmx, page, section

router = section()

#: the latest runs shown on an automation's page
RUNS_SHOWN = 50
#: characters of a message shown in the steps summary
TEXT_SHOWN = 160


@dataclass(frozen=True)
class StepLine:
    """One step as plain text (the template escapes it)."""

    id: str
    kind: str
    detail: str
    next: str | None
    orelse: str | None


def _detail(step: Step) -> str:
    args = step.args
    if step.kind in ("send", "notify_admins"):
        text = args["template"].content.text
        return text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "…"
    if step.kind == "wait":
        return f"until {args['until']:%H:%M}" if "until" in args else str(args["duration"])
    if step.kind == "if":
        return str(args["condition"])
    if "names" in args:
        return ", ".join(args["names"])
    if "values" in args:
        return ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}"
                         for k, v in args["values"].items())
    if "event" in args:
        return str(args["event"])
    return ""


def steps_of(automation: Automation) -> list[StepLine]:
    return [StepLine(s.id, s.kind, _detail(s), s.next, s.orelse)
            for s in automation.steps.values()]


def _load(request: Request) -> tuple[AutomationFile | None, str | None]:
    """The file (None when not configured) or its one-line problems."""
    settings = console_of(request).settings
    path = settings.automations_file
    if path is None:
        return None, None
    try:
        return load_automations(path, scenario_flow_ids(settings.scenarios_file)), None
    except AutomationFileError as e:
        return None, "\n".join(e.lines)


def _trigger(a: Automation) -> str:
    return a.trigger.describe()


@router.get("/automations")
async def index(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    found, problem = _load(request)
    rows: list[dict[str, Any]] = []
    for a in found.automations if found else ():
        st = await service.status(db, a.id)
        rows.append({"a": a, "trigger": _trigger(a), "steps": len(a.steps), "st": st,
                     "active": sum(st.at_step.values())})
    return await page(request, db, admin, "automations.html", rows=rows, problem=problem,
                      configured=console_of(request).settings.automations_file is not None)


def _one(request: Request, automation_id: str) -> Automation:
    found, _problem = _load(request)
    automation = found.get(automation_id) if found else None
    if automation is None:
        raise NotFound(f"automation {automation_id!r} is not in RELOVE_AUTOMATIONS_FILE")
    return automation


@router.get("/automations/{automation_id}")
async def show(request: Request, admin: AdminDep, db: DbDep,
               automation_id: str) -> HTMLResponse:
    a = _one(request, automation_id)
    st = await service.status(db, a.id)
    runs = await service.user_runs(db, a.id, limit=RUNS_SHOWN)
    return await page(request, db, admin, "automation.html", a=a, trigger=_trigger(a),
                      steps=steps_of(a), st=st, active=sum(st.at_step.values()), runs=runs)


async def _pause(request: Request, admin: AdminDep, db: DbDep, automation_id: str,
                 paused: bool) -> Response:
    a = _one(request, automation_id)
    await service.set_paused(db, a.id, paused, now=console_of(request).now())
    await audit(db, admin.admin_id, AUTOMATION_PAUSED if paused else AUTOMATION_RESUMED,
                {"automation": a.id})
    await db.commit()
    target = f"/automations/{a.id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/automations/{automation_id}/pause")
async def pause(request: Request, admin: AdminDep, db: DbDep, automation_id: str) -> Response:
    return await _pause(request, admin, db, automation_id, True)


@router.post("/automations/{automation_id}/resume")
async def resume(request: Request, admin: AdminDep, db: DbDep, automation_id: str) -> Response:
    return await _pause(request, admin, db, automation_id, False)
