"""``/events``: a user's history, everyone's history (by name and time), and custom events from
integrations (``POST /events``: ≤ 1,000 per request, deduplicated by the client's ``id``).

Behaviour of ``POST /events`` (docs/api.md):

* the whole request is refused (422, nothing recorded) when any event is malformed — a bad name,
  props that are not a JSON object of ≤ 8 KiB, a time before 2000 or more than an hour ahead;
* an event for a user the bot does not know is refused alone (per-item 404) and the others are
  recorded: history belongs to users, and the API does not invent Telegram users;
* an event whose ``id`` this token already sent for a time less than 24 h away is a duplicate
  (reported, not recorded again) — a client may retry a whole batch safely.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field, JsonValue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.api.deps import ContextDep, SessionDep, reader, writer
from relove.api.problems import problem_dict
from relove.api.routing import ApiRoute
from relove.api.schemas import INT64_MAX, Problem, Strict, UserId
from relove.api.tokens import Principal
from relove.db.models import User
from relove.errors import InvalidInput, NotFound
from relove.events import Event, EventSource, NewEvent, record_many
from relove.events.models import NAME_MAX_LENGTH, PROPS_MAX_BYTES
from relove.events.record import check_props
from relove.events.timeline import MAX_LIMIT, timeline

router = APIRouter(route_class=ApiRoute, tags=["events"])

MAX_EVENTS = 1000
DEDUPE_WINDOW = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(hours=1)
NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
CLIENT_ID_MAX = 100


# -- bodies ------------------------------------------------------------------------------------
class EventOut(BaseModel):
    id: int
    user_id: int | None
    name: str
    props: dict[str, JsonValue]
    source: str
    actor: str | None
    at: datetime


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


ClientId = Annotated[str, Field(min_length=1, max_length=CLIENT_ID_MAX, pattern=r"^[!-~]+$")]


class EventIn(Strict):
    id: ClientId | None = Field(
        None, description="The client's id of the event (e.g. a UUID): the same id again "
        "within 24 h is recorded once.",
    )
    user_id: Annotated[int, Field(ge=1, le=INT64_MAX, description="The user's Telegram id.")]
    name: Annotated[str, Field(max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)] = Field(
        description="`object.action`, e.g. `order.paid`."
    )
    props: dict[str, JsonValue] | None = Field(
        None, description=f"A JSON object of at most {PROPS_MAX_BYTES} bytes."
    )
    at: AwareDatetime | None = Field(None, description="When it happened (default: now).")


class EventBatch(Strict):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS)]


class EventItemResult(BaseModel):
    index: int
    id: str | None
    status: int = Field(description="201 recorded, 200 a duplicate (already recorded), 404 "
                        "unknown user.")  # fmt: skip
    error: Problem | None = None


class EventBatchResult(BaseModel):
    recorded: int
    duplicates: int
    failed: int
    results: list[EventItemResult]


# -- reading -----------------------------------------------------------------------------------
CursorQ = Annotated[str | None, Query(max_length=200, description="`next_cursor` of a page.")]
LimitQ = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
NameQ = Annotated[
    str | None,
    Query(alias="name", max_length=1000,
          description="Only these names, comma-separated; `*` matches any run: `marker.*`."),
]  # fmt: skip


def _page(page: Any) -> Response:
    return JSONResponse(page.to_dict())


@router.get(
    "/users/{user_id}/events",
    response_model=EventPage,
    summary="A user's history, newest first",
)
async def user_events(
    user_id: UserId,
    session: SessionDep,
    _: Annotated[Principal, reader("events:read")],
    cursor: CursorQ = None,
    limit: LimitQ = 50,
    names: NameQ = None,
) -> Response:
    if await session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    return _page(await timeline(session, user_id, limit=limit, cursor=cursor, names=names or None))


@router.get("/events", response_model=EventPage, summary="Everyone's history, newest first")
async def list_events(
    session: SessionDep,
    _: Annotated[Principal, reader("events:read")],
    names: NameQ = None,
    since: Annotated[AwareDatetime | None, Query(description="From this time on.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before this time.")] = None,
    cursor: CursorQ = None,
    limit: LimitQ = 50,
) -> Response:
    page = await timeline(session, None, limit=limit, cursor=cursor, names=names or None,
                          since=_utc(since), until=_utc(until))  # fmt: skip
    return _page(page)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"time {value.isoformat()} is out of range") from None


# -- writing -----------------------------------------------------------------------------------
def _when(index: int, item: EventIn, now: datetime) -> datetime:
    if item.at is None:
        return now
    at = _utc(item.at)
    assert at is not None
    if not EARLIEST <= at <= now + MAX_AHEAD:
        raise InvalidInput(f"events[{index}].at: {item.at.isoformat()} is before 2000 or more "
                           "than an hour ahead")  # fmt: skip
    return at


async def _known_users(session: AsyncSession, ids: set[int]) -> set[int]:
    rows = await session.execute(select(User.id).where(User.id.in_(sorted(ids))))
    return set(rows.scalars().all())


async def _seen(
    session: AsyncSession, keys: set[str], times: Sequence[datetime]
) -> dict[str, list[datetime]]:
    """The times of events already recorded with these dedupe keys (around the batch's times)."""
    if not keys:
        return {}
    E = Event.__table__
    rows = await session.execute(
        select(E.c.dedupe_key, E.c.at).where(
            E.c.dedupe_key.in_(sorted(keys)),
            E.c.at > min(times) - DEDUPE_WINDOW,
            E.c.at < max(times) + DEDUPE_WINDOW,
        )
    )
    seen: dict[str, list[datetime]] = {}
    for key, at in rows:
        seen.setdefault(key, []).append(at)
    return seen


def _is_duplicate(times: list[datetime], at: datetime) -> bool:
    return any(abs(at - other) < DEDUPE_WINDOW for other in times)


@router.post(
    "/events",
    response_model=EventBatchResult,
    summary="Record custom events (≤ 1,000, per-item results)",
    description="Events for users the bot does not know are refused per item (404); an `id` "
    "this token already sent for a time less than 24 h away is a duplicate (200) and not "
    "recorded again; the others are recorded (201) with source `api` and the token as actor.",
)
async def post_events(
    body: EventBatch,
    session: SessionDep,
    ctx: ContextDep,
    principal: Annotated[Principal, writer("events:write")],
) -> Response:
    now = ctx.clock()
    times = [_when(i, item, now) for i, item in enumerate(body.events)]
    for i, item in enumerate(body.events):
        try:
            check_props(item.props)
        except InvalidInput as e:
            raise InvalidInput(f"events[{i}].props: {e}") from None
    # The client's ids are this token's: two integrations may both send "order-17".
    keys = [f"{principal.key_id}:{item.id}" if item.id is not None else None
            for item in body.events]  # fmt: skip
    known = await _known_users(session, {item.user_id for item in body.events})
    seen = await _seen(session, {k for k in keys if k is not None}, times)
    results: list[dict[str, Any]] = []
    new: list[NewEvent] = []
    for i, (item, key, at) in enumerate(zip(body.events, keys, times, strict=True)):
        result: dict[str, Any] = {"index": i, "id": item.id}
        if item.user_id not in known:
            error = NotFound(f"user {item.user_id} not found")
            result.update(status=404, error=problem_dict(error))
        elif key is not None and _is_duplicate(seen.get(key, []), at):
            result["status"] = 200
        else:
            result["status"] = 201
            if key is not None:
                seen.setdefault(key, []).append(at)
            new.append(NewEvent(item.user_id, item.name, item.props or {}, at=at,
                                dedupe_key=key))  # fmt: skip
        results.append(result)
    if new:
        await record_many(session, new, source=EventSource.api, actor=principal.actor)
    counts = {s: sum(1 for r in results if r["status"] == s) for s in (201, 200)}
    return JSONResponse({
        "recorded": counts[201],
        "duplicates": counts[200],
        "failed": len(results) - counts[201] - counts[200],
        "results": results,
    })  # fmt: skip
