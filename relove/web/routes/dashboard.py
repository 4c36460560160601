"""The dashboard: totals, activity, new users, sources, top markers, live broadcasts."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from relove.web import dashboard
from relove.web.deps import AdminDep, DbDep, console_of, page, section

router = section()


@router.get("/")
async def show(request: Request, admin: AdminDep, db: DbDep) -> HTMLResponse:
    console = console_of(request)
    data, age = await console.cache.get(
        "dashboard", lambda: dashboard.compute(console.reader, console.now()),
        ttl=dashboard.REFRESH_SECONDS)
    running, scheduled = await dashboard.live_broadcasts(db)
    return await page(request, db, admin, "dashboard.html", d=data, age=int(age),
                      running=running, scheduled=scheduled, chart_new=data.chart_new(),
                      chart_activity=data.activity.chart())
