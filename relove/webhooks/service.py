"""Endpoints (add, list, show, enable/disable, rotate the secret), the messages they receive
(payloads, a test ping, replays) and the deliveries log. Callers own the session's transaction.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import User
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.errors import FilterError, InvalidInput, NotFound
from relove.events.models import Event
from relove.segments import resolve_filter
from relove.webhooks import netguard, signing
from relove.webhooks.models import (
    DESCRIPTION_MAX,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

#: ``user.*``, ``marker.changed``, ``*``: lower-case words joined by dots, ``*`` for any part.
_PATTERN = re.compile(r"\*|[a-z][a-z0-9_]*(\.([a-z][a-z0-9_]*|\*))*")
MAX_PATTERNS = 50
#: the most events one ``replay --since`` re-queues
REPLAY_MAX = 10_000
PING = "webhook.test"


# -- patterns and payloads ---------------------------------------------------------------------
def parse_patterns(items: str | Iterable[str]) -> list[str]:
    raw = items.replace(",", " ").split() if isinstance(items, str) else list(items)
    out: list[str] = []
    for item in raw:
        item = str(item).strip()
        if not item:
            continue
        if len(item) > 100 or not _PATTERN.fullmatch(item):
            raise InvalidInput(
                f"event pattern {item[:40]!r} is not an event name or a pattern such as user.*"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise InvalidInput("name at least one event pattern, e.g. --events 'user.*,marker.changed'")
    if len(out) > MAX_PATTERNS:
        raise InvalidInput(f"at most {MAX_PATTERNS} event patterns")
    return out


def matches(patterns: Sequence[str], name: str) -> bool:
    return any(p == name or p == "*" or fnmatch.fnmatchcase(name, p) for p in patterns)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def event_body(event: Any, user: Any | None) -> str:
    """The JSON body for an event row (``id, user_id, name, props, source, actor, at``) and its
    user (``id, username, first_name, last_name``) when known."""
    occurred = event.at.isoformat()
    data: dict[str, Any] = {
        "event_id": event.id,
        # ids grow in insertion order: per user they are a sequence (with holes)
        "sequence": event.id,
        "occurred_at": occurred,
        "user_id": event.user_id,
        "user": None if user is None else {
            "id": user.id, "username": user.username, "first_name": user.first_name,
            "last_name": user.last_name,
        },
        "props": dict(event.props or {}),
        "source": event.source,
        "actor": event.actor,
    }
    return _ENCODE({"type": event.name, "timestamp": occurred, "data": data})


def msg_id_of(event_id: int) -> str:
    return f"evt_{event_id}"


def insert_deliveries(dialect: str) -> Any:
    """INSERT of delivery rows that skips (endpoint, msg_id) pairs already there."""
    table = WebhookDelivery.__table__
    stmt = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
    return stmt.on_conflict_do_nothing(index_elements=["endpoint_id", "msg_id"])


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# -- endpoints ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str  #: shown once


async def check_filter(session: AsyncSession, flt: str | None) -> str | None:
    if flt is None or not flt.strip():
        return None
    await resolve_filter(session, flt)  # FilterError with one line
    return flt.strip()


async def add_endpoint(
    session: AsyncSession,
    url: str,
    events: str | Iterable[str],
    *,
    filter_text: str | None = None,
    description: str | None = None,
    actor: str | None = None,
    allow_private: bool = False,
) -> Created:
    """A new enabled endpoint; its secret is returned once. Events from now on are delivered."""
    url = netguard.check_url_form(url)
    patterns = parse_patterns(events)
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise InvalidInput(f"the description is longer than {DESCRIPTION_MAX} characters")
    flt = await check_filter(session, filter_text)
    await netguard.target(url, allow_private=allow_private)  # AddressRefused: one line
    await begin_write(session)
    last = (await session.execute(select(func.max(Event.id)))).scalar_one()
    now = utcnow()
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        url=url, description=description or None, secret=secret, events=patterns, filter=flt,
        enabled=True, from_event_id=int(last or 0), created_by=actor, created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return Created(endpoint, secret)


async def get_endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    found = await session.get(WebhookEndpoint, endpoint_id)
    if found is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return found


async def list_endpoints(session: AsyncSession) -> Sequence[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    return (await session.execute(stmt)).scalars().all()


async def set_enabled(session: AsyncSession, endpoint_id: int, enabled: bool) -> WebhookEndpoint:
    """Enable (its failure clock restarts) or disable an endpoint. Messages of events that come
    while it is disabled are not queued for it (``replay --since`` sends them later)."""
    await begin_write(session)
    endpoint = await get_endpoint(session, endpoint_id)
    endpoint.enabled = enabled
    endpoint.disabled_reason = None if enabled else "disabled by an operator"
    endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession, endpoint_id: int, *, grace: timedelta
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one still signs (a second signature) for ``grace``."""
    await begin_write(session)
    endpoint = await get_endpoint(session, endpoint_id)
    new = signing.new_secret()
    now = utcnow()
    if grace > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = now + grace
    else:
        endpoint.previous_secret = endpoint.previous_secret_until = None
    endpoint.secret = new
    endpoint.updated_at = now
    await session.flush()
    return endpoint, new


def signing_secrets(endpoint: Any, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous during its grace period."""
    out = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and until > now:
        out.append(endpoint.previous_secret)
    return out


# -- messages ----------------------------------------------------------------------------------
async def send_test(session: AsyncSession, endpoint_id: int) -> WebhookDelivery:
    """Queue a ``webhook.test`` ping for the endpoint (its own id, not an event's)."""
    await begin_write(session)
    endpoint = await get_endpoint(session, endpoint_id)
    now = utcnow()
    msg_id = f"msg_test_{secrets.token_hex(8)}"
    body = _ENCODE({"type": PING, "timestamp": now.isoformat(),
                    "data": {"endpoint_id": endpoint.id, "message": "ping"}})
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id, event_id=None, msg_id=msg_id, event_name=PING, body=body,
        status=DeliveryStatus.pending.value, attempts=0, next_attempt_at=now, created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery


async def _users(session: AsyncSession, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = await session.execute(
        select(User.id, User.username, User.first_name, User.last_name).where(User.id.in_(ids))
    )
    return {r.id: r for r in rows}


async def filter_users(session: AsyncSession, flt: str, ids: set[int]) -> set[int]:
    """Which of ``ids`` match the endpoint's filter (compiled by the segment compiler)."""
    if not ids:
        return set()
    where = await resolve_filter(session, flt)
    rows = await session.execute(select(User.id).where(User.id.in_(ids), where))
    return set(rows.scalars().all())


async def replay(
    session: AsyncSession,
    endpoint_id: int,
    *,
    event_id: int | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> int:
    """Send events again (or for the first time) to an endpoint: one event by id, or every
    matching event since a time (at most 10,000). A message already delivered keeps its
    ``webhook-id`` and goes out again; returns how many were queued."""
    if (event_id is None) == (since is None):
        raise InvalidInput("replay needs either an event id or a time (--event or --since)")
    await begin_write(session)
    endpoint = await get_endpoint(session, endpoint_id)
    cols = (Event.id, Event.user_id, Event.name, Event.props, Event.source, Event.actor, Event.at)
    if event_id is not None:
        rows = list(await session.execute(select(*cols).where(Event.id == event_id)))
        if not rows:
            raise NotFound(f"event {event_id} not found")
        if not matches(endpoint.events, rows[0].name):
            raise InvalidInput(
                f"event {event_id} is {rows[0].name}, which endpoint {endpoint_id} does not "
                f"subscribe to ({', '.join(endpoint.events)})"
            )
    else:
        assert since is not None
        if since.tzinfo is None:
            raise InvalidInput("naive datetime given; use an aware UTC datetime")
        rows = [
            r for r in await session.execute(
                select(*cols).where(Event.at >= since).order_by(Event.id).limit(REPLAY_MAX * 5)
            )
            if matches(endpoint.events, r.name)
        ][:REPLAY_MAX]
    if endpoint.filter:
        try:
            keep = await filter_users(
                session, endpoint.filter, {r.user_id for r in rows if r.user_id is not None}
            )
        except FilterError as e:
            raise InvalidInput(f"the endpoint's filter no longer holds: {e}") from e
        rows = [r for r in rows if r.user_id in keep]
    if not rows:
        return 0
    users = await _users(session, {r.user_id for r in rows if r.user_id is not None})
    now = now or utcnow()
    d = WebhookDelivery.__table__
    msg_ids = [msg_id_of(r.id) for r in rows]
    # Existing ones go again (same webhook-id), new ones are inserted.
    await session.execute(
        update(d)
        .where(d.c.endpoint_id == endpoint.id, d.c.msg_id.in_(msg_ids))
        .values(status=DeliveryStatus.pending.value, attempts=0, next_attempt_at=now,
                locked_until=None)
    )
    values = [
        {"endpoint_id": endpoint.id, "event_id": r.id, "msg_id": msg_id_of(r.id),
         "event_name": r.name, "body": event_body(r, users.get(r.user_id)),
         "status": DeliveryStatus.pending.value, "attempts": 0, "next_attempt_at": now,
         "created_at": now}
        for r in rows
    ]
    await session.execute(insert_deliveries(_dialect(session)), values)
    return len(rows)


async def list_deliveries(
    session: AsyncSession, endpoint_id: int, *, failed: bool = False, limit: int = 50,
    before_id: int | None = None,
) -> Sequence[WebhookDelivery]:
    """An endpoint's deliveries, newest first (``failed``: only those that gave up)."""
    await get_endpoint(session, endpoint_id)
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if failed:
        stmt = stmt.where(WebhookDelivery.status == DeliveryStatus.failed.value)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return (await session.execute(stmt)).scalars().all()


async def list_attempts(session: AsyncSession, delivery_id: int) -> Sequence[WebhookAttempt]:
    return (await session.execute(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.id)
    )).scalars().all()


def delivery_dict(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "webhook_id": d.msg_id,
        "event": d.event_name, "status": d.status, "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.isoformat()
        if d.status == DeliveryStatus.pending.value else None,
        "last_status": d.last_status, "last_error": d.last_error,
        "created_at": d.created_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
    }


async def failed_counts(session: AsyncSession) -> dict[int, int]:
    """Per endpoint id, how many of its deliveries gave up (``failed``)."""
    d = WebhookDelivery.__table__
    rows = await session.execute(
        select(d.c.endpoint_id, func.count())
        .where(d.c.status == DeliveryStatus.failed.value)
        .group_by(d.c.endpoint_id)
    )
    return {int(endpoint_id): int(n) for endpoint_id, n in rows}
