"""The sender: claims due deliveries, POSTs them signed, records each attempt, schedules retries.

Claiming is one UPDATE … RETURNING over a ``FOR UPDATE SKIP LOCKED`` subquery on PostgreSQL (a
single statement, hence a single writer, on SQLite): a delivery is ``sending`` until
``locked_until``; a worker that dies leaves it to be claimed again after the lease — the receiver
may then get it twice, always with the same ``webhook-id`` (at-least-once).

Retries follow Svix's schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
(±20 % jitter); 429/503 with ``Retry-After`` wait at least that long; 410 disables the endpoint;
an endpoint failing for ``RELOVE_WEBHOOKS_DISABLE_AFTER_DAYS`` without one success is disabled
and ``on_disabled`` tells its owners. Redirects are not followed (3xx is a failure).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.engine import create_session_factory
from relove.db.types import utcnow
from relove.ops import metrics
from relove.webhooks import netguard, signing
from relove.webhooks.models import (
    BODY_MAX,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from relove.webhooks.service import signing_secrets

log = logging.getLogger(__name__)

#: seconds before attempt 1, 2, … (Svix): 8 attempts in all over about 28 hours
SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2
#: failures in a row after which an endpoint rests, its first rest and the longest (seconds)
REST_AFTER = 5
REST_FIRST = 5.0
REST_MAX = 300.0
USER_AGENT = "relove-webhooks/1"

#: ``on_disabled(endpoint_id, url, reason)``
OnDisabled = Callable[[int, str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    endpoint_id: int
    msg_id: str
    body: str
    attempts: int
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    claimed: Claimed
    at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int
    body: str | None
    retry_after: float | None


@dataclass
class SendStats:
    """Counters for metrics (plain attributes a collector can read)."""

    attempts: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    disabled: int = 0
    refused: int = 0  #: attempts stopped by the SSRF guard


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


class Sender:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        timeout: float = 15.0,
        allow_private: bool = False,
        endpoint_concurrency: int = 16,
        disable_after: timedelta = timedelta(days=5),
        schedule: Sequence[float] = SCHEDULE,
        lease_seconds: float | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_disabled: OnDisabled | None = None,
        client: aiohttp.ClientSession | None = None,
        max_connections: int = 64,
    ) -> None:
        self.engine = engine
        self.sessions = create_session_factory(engine)
        self.pg = engine.dialect.name == "postgresql"
        self.timeout = timeout
        self.allow_private = allow_private
        self.endpoint_cap = endpoint_concurrency
        self.disable_after = disable_after
        self.schedule = tuple(schedule)
        self.lease = timedelta(seconds=lease_seconds or timeout * 2 + 15)
        self.clock = clock
        self.on_disabled = on_disabled
        self.max_connections = max_connections
        self._client = client
        self._own_client = client is None
        self.inflight: Counter[int] = Counter()
        #: failures in a row per endpoint, and until when (monotonic) a failing one rests
        self.failures: Counter[int] = Counter()
        self.resting: dict[int, float] = {}
        self._gates: dict[int, asyncio.Semaphore] = {}
        self.stats = SendStats()

    @property
    def client(self) -> aiohttp.ClientSession:
        """One HTTP client per sender (created in the running loop on first use)."""
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections,
                                               limit_per_host=self.endpoint_cap),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"user-agent": USER_AGENT}, trust_env=False,
                skip_auto_headers=("content-type",),
            )
        return self._client

    async def close(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.close()

    # -- claiming ----------------------------------------------------------------------------
    async def claim(self, limit: int) -> list[Claimed]:
        if limit <= 0:
            return []
        now = self.clock()
        d, e = WebhookDelivery.__table__, WebhookEndpoint.__table__
        busy = [ep for ep, n in self.inflight.items() if n >= self.endpoint_cap]
        mono = time.monotonic()
        busy += [ep for ep, until in self.resting.items() if until > mono]
        due = or_(
            and_(d.c.status == DeliveryStatus.pending.value, d.c.next_attempt_at <= now),
            and_(d.c.status == DeliveryStatus.sending.value, d.c.locked_until < now),
        )
        sub = (
            select(d.c.id).join(e, e.c.id == d.c.endpoint_id)
            .where(due, e.c.enabled.is_(True))
            .order_by(d.c.next_attempt_at, d.c.id).limit(limit)
        )
        if busy:
            sub = sub.where(d.c.endpoint_id.not_in(busy))
        if self.pg:
            sub = sub.with_for_update(skip_locked=True, of=d)
        stmt = (
            update(d).where(d.c.id.in_(sub.scalar_subquery()))
            .values(status=DeliveryStatus.sending.value, locked_until=now + self.lease)
            .returning(d.c.id, d.c.endpoint_id, d.c.msg_id, d.c.body, d.c.attempts)
        )
        async with self.sessions.begin() as session:
            rows = list(await session.execute(stmt))
            if not rows:
                return []
            eps = {
                ep.id: ep for ep in (await session.execute(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.id.in_({r.endpoint_id for r in rows}))
                )).scalars()
            }
        out = []
        wall = utcnow()
        for r in rows:
            ep = eps[r.endpoint_id]
            out.append(Claimed(r.id, r.endpoint_id, r.msg_id, r.body, r.attempts, ep.url,
                               tuple(signing_secrets(ep, wall))))
        return out

    # -- one attempt -------------------------------------------------------------------------
    async def attempt(self, c: Claimed) -> Result:
        gate = self._gates.get(c.endpoint_id)
        if gate is None:
            gate = self._gates[c.endpoint_id] = asyncio.Semaphore(self.endpoint_cap)
        async with gate:
            return await self._post(c)

    async def _post(self, c: Claimed) -> Result:
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        body: str | None = None
        retry_after: float | None = None
        try:
            tgt = await netguard.target(c.url, allow_private=self.allow_private)
            headers = signing.headers(c.secrets, c.msg_id, utcnow(), c.body)
            headers["host"] = tgt.host
            sni = None
            if c.url.lower().startswith("https:"):
                sni = urlsplit(c.url).hostname or None
            async with self.client.post(
                tgt.url, data=c.body.encode(), headers=headers, allow_redirects=False,
                server_hostname=sni,
            ) as response:
                status = response.status
                chunks = b""
                while len(chunks) < BODY_MAX:
                    part = await response.content.read(BODY_MAX - len(chunks))
                    if not part:
                        break
                    chunks += part
                body = chunks.decode("utf-8", "replace")
                if status in (429, 503):
                    retry_after = parse_retry_after(
                        response.headers.get("retry-after"), utcnow()
                    )
        except netguard.AddressRefused as ex:
            error = str(ex)
            self.stats.refused += 1
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as ex:
            error = f"{type(ex).__name__}: {ex}"[:500]
        latency = int((time.monotonic() - started) * 1000)
        return Result(c, self.clock(), status, error, latency, body, retry_after)

    # -- recording ---------------------------------------------------------------------------
    def _next_delay(self, attempts: int, retry_after: float | None) -> float | None:
        """Seconds until the next attempt after ``attempts`` failed ones, or None: give up."""
        if attempts >= len(self.schedule):
            return None
        delay = self.schedule[attempts]
        delay *= 1 + random.uniform(-JITTER, JITTER)  # noqa: S311 (not a secret)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.schedule)))
        return delay

    def _note_health(self, endpoint_id: int, ok: bool) -> None:
        """An endpoint failing REST_AFTER times in a row rests (its deliveries wait, their
        attempts unspent) for 5 s, doubling up to 5 min: a dead receiver does not take the
        worker's time from the live ones."""
        if ok:
            self.failures.pop(endpoint_id, None)
            self.resting.pop(endpoint_id, None)
            return
        self.failures[endpoint_id] += 1
        n = self.failures[endpoint_id]
        if n >= REST_AFTER:
            rest = min(REST_FIRST * 2 ** ((n - REST_AFTER) // REST_AFTER), REST_MAX)
            self.resting[endpoint_id] = time.monotonic() + rest

    async def record(self, results: Sequence[Result]) -> None:
        """Write the attempts, the deliveries' new states and the endpoints' health."""
        if not results:
            return
        d, e = WebhookDelivery.__table__, WebhookEndpoint.__table__
        rows: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        health: dict[int, str] = {}  # endpoint -> "ok" | "fail" | "gone" (the last outcome)
        for r in results:
            c = r.claimed
            n = c.attempts + 1
            ok = r.status_code is not None and 200 <= r.status_code < 300
            attempts.append({
                "delivery_id": c.id, "at": r.at, "status_code": r.status_code,
                "error": r.error, "latency_ms": r.latency_ms, "response_body": r.body,
            })
            error = r.error or (None if ok else f"HTTP {r.status_code}")
            row = {"b_id": c.id, "b_attempts": n, "b_last_status": r.status_code,
                   "b_last_error": error, "b_next": r.at, "b_delivered": None}
            if ok:
                row["b_status"] = DeliveryStatus.delivered.value
                row["b_delivered"] = r.at
                health[c.endpoint_id] = "ok"
                self.stats.delivered += 1
            elif r.status_code == 410:
                row["b_status"] = DeliveryStatus.failed.value
                health[c.endpoint_id] = "gone"
                self.stats.gave_up += 1
            else:
                self.stats.failed_attempts += 1
                delay = self._next_delay(n, r.retry_after)
                if delay is None:
                    row["b_status"] = DeliveryStatus.failed.value
                    self.stats.gave_up += 1
                else:
                    row["b_status"] = DeliveryStatus.pending.value
                    row["b_next"] = r.at + timedelta(seconds=delay)
                if health.get(c.endpoint_id) != "gone":
                    health[c.endpoint_id] = "fail"
            rows.append(row)
            self.stats.attempts += 1
            self._note_health(c.endpoint_id, ok)
        now = self.clock()
        disabled: list[tuple[int, str, str]] = []
        async with self.sessions.begin() as session:
            await session.execute(
                # a replay may have re-queued it meanwhile: then it stays queued
                update(d).where(d.c.id == bindparam("b_id"),
                                d.c.status == DeliveryStatus.sending.value)
                .values(status=bindparam("b_status"), attempts=bindparam("b_attempts"),
                        last_status=bindparam("b_last_status"),
                        last_error=bindparam("b_last_error"),
                        next_attempt_at=bindparam("b_next"),
                        delivered_at=bindparam("b_delivered"), locked_until=None),
                rows,
            )
            await session.execute(WebhookAttempt.__table__.insert(), attempts)
            fine = [ep for ep, h in health.items() if h == "ok"]
            fail = [ep for ep, h in health.items() if h == "fail"]
            gone = [ep for ep, h in health.items() if h == "gone"]
            if fine:
                await session.execute(
                    update(e).where(e.c.id.in_(fine), e.c.failing_since.is_not(None))
                    .values(failing_since=None)
                )
            if fail:
                await session.execute(
                    update(e).where(e.c.id.in_(fail), e.c.failing_since.is_(None))
                    .values(failing_since=now)
                )
                reason = (f"failing for {self.disable_after.total_seconds() / 86400:g} days "
                          "without one success")
                found = await session.execute(
                    update(e).where(e.c.id.in_(fail), e.c.enabled.is_(True),
                                    e.c.failing_since <= now - self.disable_after)
                    .values(enabled=False, disabled_reason=reason, updated_at=now)
                    .returning(e.c.id, e.c.url)
                )
                disabled += [(row.id, row.url, reason) for row in found]
            if gone:
                reason = "the endpoint answered 410 Gone"
                found = await session.execute(
                    update(e).where(e.c.id.in_(gone), e.c.enabled.is_(True))
                    .values(enabled=False, disabled_reason=reason, updated_at=now)
                    .returning(e.c.id, e.c.url)
                )
                disabled += [(row.id, row.url, reason) for row in found]
        for r, row in zip(results, rows, strict=True):  # recorded: now they count
            status = row["b_status"]
            outcome = ("delivered" if status == DeliveryStatus.delivered.value
                       else "retry" if status == DeliveryStatus.pending.value else "failed")
            metrics.WEBHOOK_ATTEMPTS.labels(outcome).inc()
            metrics.WEBHOOK_SECONDS.observe(r.latency_ms / 1000)
        for endpoint_id, url, reason in disabled:
            self.stats.disabled += 1
            log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
            if self.on_disabled is not None:
                try:
                    await self.on_disabled(endpoint_id, url, reason)
                except Exception:
                    log.warning("webhook endpoint %s: telling the owners failed", endpoint_id,
                                exc_info=True)
