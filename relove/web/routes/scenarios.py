"""Scenarios & catalog: the flows and catalog items (read-only), per-step answer counts and
drop-off per flow over a window, *Validate* (viewers too: nothing changes) and *Reload*
(operators, CSRF)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from relove.analytics.scenarios import FlowCounts, flow_funnel, scenario_counts
from relove.conversation.scenarios import Flow
from relove.conversation.yamlfile import DefinitionError
from relove.web.audit import SCENARIOS_RELOADED, audit
from relove.web.deps import AdminDep, DbDep, console_of, is_htmx, page, section, texts_for
from relove.web.scenarios import check_files, reload_files

router = section()

Window = Literal["7d", "30d", "all"]
WINDOWS: dict[str, timedelta | None] = {"7d": timedelta(days=7), "30d": timedelta(days=30),
                                        "all": None}


def _steps(flow: Flow) -> list[tuple[str, bool]]:
    return [(s.id, s.when is not None or s.skippable) for s in flow.steps]


#: seconds the counts are served from memory (refreshed in the background after that)
COUNTS_TTL = 300.0


def _values(request: Request, window: str) -> dict[str, Any]:
    """The page without the counts (its htmx fragment loads them)."""
    console = console_of(request)
    return {
        "flows": console.scenarios.flows,
        "modes": console.scenarios.current.ai_sessions,
        "items": console.catalog.current.items,
        "window": window,
        "windows": list(WINDOWS),
        "shared": console.shares_bot_files,
        "scenarios_file": console.scenarios.path,
        "catalog_file": console.catalog.path,
    }


@dataclass
class _Counted:
    counts: dict[str, FlowCounts]
    since: datetime | None
    at: datetime


@router.get("/scenarios")
async def index(request: Request, admin: AdminDep, db: DbDep,
                window: Annotated[Window, Query()] = "30d") -> HTMLResponse:
    return await page(request, db, admin, "scenarios.html", **_values(request, window))


@router.get("/scenarios/counts")
async def counts(request: Request, admin: AdminDep, db: DbDep,
                 window: Annotated[Window, Query()] = "30d") -> HTMLResponse:
    """Per flow, answers and drop-off per step over the window (one grouped count over the
    events, kept ``COUNTS_TTL`` seconds per window and console process)."""
    console = console_of(request)

    async def compute() -> _Counted:
        now = console.now()
        span = WINDOWS[window]
        since = now - span if span is not None else None
        async with console.reader() as session:  # the read replica when configured
            return _Counted(await scenario_counts(session, since=since), since, now)

    counted, _age = await console.cache.get(f"scenarios:{window}", compute, ttl=COUNTS_TTL)
    flows = console.scenarios.flows
    funnels = {f.id: flow_funnel(counted.counts.get(f.id), _steps(f), f.id) for f in flows}
    gone = sorted(k for k in counted.counts if k not in funnels)
    return await page(request, db, admin, "scenarios.html", block="counts",
                      flows=flows, funnels=funnels, since=counted.since, counted_at=counted.at,
                      gone=[(k, flow_funnel(counted.counts[k], [], k)) for k in gone])


@router.get("/scenarios/check")
async def check(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    """Validate the files on disk, as ``relove conversation check`` does (nothing changes)."""
    checks = check_files(console_of(request).settings)
    if is_htmx(request):
        return await page(request, db, admin, "scenarios.html", block="check", checks=checks)
    return await page(request, db, admin, "scenarios.html", checks=checks,
                      **_values(request, "30d"))


@router.post("/scenarios/reload")
async def reload(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    """Re-read both files into the registries (the bot's own when it runs in this process)."""
    console = console_of(request)
    t = texts_for(request)
    try:
        done = reload_files(console.scenarios, console.catalog)
    except DefinitionError as e:
        message, ok, status = t("scenarios.reload_failed", error=str(e)), False, 422
    else:
        await audit(db, admin.admin_id, SCENARIOS_RELOADED,
                    {"flows": done.flows, "items": done.items, "bot": console.shares_bot_files})
        await db.commit()
        key = "scenarios.reloaded_bot" if console.shares_bot_files else "scenarios.reloaded_console"
        message, ok, status = t(key, flows=done.flows, items=done.items), True, 200
    if is_htmx(request):
        return await page(request, db, admin, "scenarios.html", block="flash", message=message,
                          ok=ok, status=status)
    return await page(request, db, admin, "scenarios.html", message=message, ok=ok,
                      status=status, **_values(request, "30d"))
