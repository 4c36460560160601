"""``/analytics/*``: the CLI's ``relove stats`` over HTTP — overview, breakdown, activity,
events per day, funnel and retention — each the same service call, optionally under a filter."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, JsonValue

from relove.analytics import activity, breakdown, overview
from relove.analytics.events import (
    MAX_COHORTS,
    MAX_STEPS,
    event_counts,
    funnel,
    parse_duration,
    retention,
)
from relove.analytics.service import MAX_DAYS, MAX_TOP
from relove.api.deps import ContextDep, SessionDep, reader
from relove.api.routing import ApiRoute
from relove.api.tokens import Principal
from relove.errors import InvalidInput

router = APIRouter(route_class=ApiRoute, prefix="/analytics", tags=["analytics"])

Reader = Annotated[Principal, reader("analytics:read")]
FilterQ = Annotated[
    str | None,
    Query(alias="filter", max_length=10_000,
          description='Only users matching this filter (segment language), e.g. `vip`.'),
]  # fmt: skip
DaysQ = Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days back, today included.")]
Duration = Annotated[str, Query(max_length=20, pattern=r"^\d{1,6}[smhdw]$",
                                description="A duration: 30m, 12h, 7d, 2w.")]  # fmt: skip
NamesQ = Annotated[str, Query(max_length=2000, description="Event names, comma-separated.")]


def _filter(text: str | None) -> str | None:
    return text if text and text.strip() else None


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


# -- response bodies ---------------------------------------------------------------------------
class BreakdownRow(BaseModel):
    value: JsonValue
    count: int
    share: float


class Breakdown(BaseModel):
    field: str
    total: int = Field(description="Users matching the filter.")
    rows: list[BreakdownRow]
    not_set: int = Field(description="Users without a value.")
    distinct: int
    other: int = Field(description="Occurrences of values beyond the top N.")


class Activity(BaseModel):
    total: int
    dau: int
    wau: int
    mau: int


class DayCount(BaseModel):
    date: date
    count: int


class Overview(BaseModel):
    total: int
    active: int
    inactive: int
    days: int
    new_per_day: list[DayCount]
    by_gender: dict[str, int]
    by_source: Breakdown
    activity: Activity
    generated_at: datetime


class EventCount(BaseModel):
    period: date
    name: str
    events: int
    users: int


class EventCounts(BaseModel):
    counts: list[EventCount]


class FunnelStep(BaseModel):
    name: str
    users: int
    conversion: float = Field(description="Share of step 1's users.")
    from_previous: float = Field(description="Share of the previous step's users.")


class Funnel(BaseModel):
    steps: list[FunnelStep]
    within_seconds: int
    since: datetime
    until: datetime


class Cohort(BaseModel):
    start: date
    users: int
    active: list[int]
    shares: list[float]


class Retention(BaseModel):
    period: str
    events: list[str]
    cohorts: list[Cohort]


# -- routes ------------------------------------------------------------------------------------
@router.get("/overview", response_model=Overview, summary="Totals, new users, gender, source")
async def get_overview(
    session: SessionDep, _: Reader, days: DaysQ = 14, filter_text: FilterQ = None
) -> Response:
    return JSONResponse((await overview(session, days=days, flt=_filter(filter_text))).to_dict())


@router.get(
    "/breakdown",
    response_model=Breakdown,
    summary="Users by the values of a column or marker",
    description="`field` is a column (`gender`) or a marker/context path (`interests`, "
    "`context.plan`); a list marker counts each element once per user.",
)
async def get_breakdown(
    session: SessionDep,
    _: Reader,
    field: Annotated[str, Query(min_length=1, max_length=200)],
    top: Annotated[int, Query(ge=1, le=MAX_TOP)] = 20,
    filter_text: FilterQ = None,
) -> Response:
    b = await breakdown(session, field, _filter(filter_text), top=top)
    return JSONResponse(b.to_dict())


@router.get("/activity", response_model=Activity, summary="Users seen in 1, 7 and 30 days")
async def get_activity(session: SessionDep, _: Reader, filter_text: FilterQ = None) -> Response:
    return JSONResponse((await activity(session, _filter(filter_text))).to_dict())


@router.get("/events", response_model=EventCounts, summary="Events and users per name and day")
async def get_event_counts(
    session: SessionDep,
    _: Reader,
    names: Annotated[str | None, Query(alias="name", max_length=1000,
                                       description="Only these names: `marker.*`, …")] = None,
    by: Literal["day", "week"] = "day",
    days: DaysQ = 14,
    filter_text: FilterQ = None,
) -> Response:
    counts = await event_counts(session, names=names or None, by=by, days=days,
                                flt=_filter(filter_text))  # fmt: skip
    return JSONResponse({"counts": [c.to_dict() for c in counts]})


@router.get(
    "/funnel",
    response_model=Funnel,
    summary="An ordered funnel of events",
    description="Users who did step 1 in the last `since`, then each next step after the "
    "previous one, within `within` of their step 1.",
)
async def get_funnel(
    session: SessionDep,
    ctx: ContextDep,
    _: Reader,
    steps: Annotated[str, Query(max_length=2000,
                                description=f"2–{MAX_STEPS} event names, comma-separated, "
                                "in order.")],
    within: Duration = "7d",
    since: Duration = "30d",
    filter_text: FilterQ = None,
) -> Response:
    names = _names(steps)
    window, period = parse_duration(within), parse_duration(since)
    now = ctx.clock()
    if window > timedelta(days=3660) or period > timedelta(days=3660):
        raise InvalidInput("within and since must be at most 3660 days")
    f = await funnel(session, names, within=window, since=now - period, until=now,
                     flt=_filter(filter_text))  # fmt: skip
    return JSONResponse(f.to_dict())


@router.get(
    "/retention",
    response_model=Retention,
    summary="Cohorts by first seen and their activity in each later period",
)
async def get_retention(
    session: SessionDep,
    _: Reader,
    period: Literal["day", "week", "month"] = "week",
    cohorts: Annotated[int, Query(ge=1, le=MAX_COHORTS)] = 8,
    events: Annotated[str | None, Query(
        max_length=2000, description="What counts as active, comma-separated; default: the "
        "user's own actions (messages, commands, buttons, links).")] = None,
    filter_text: FilterQ = None,
) -> Response:
    r = await retention(session, period=period, cohorts=cohorts, events=_names(events) or None,
                        flt=_filter(filter_text))  # fmt: skip
    return JSONResponse(r.to_dict())
