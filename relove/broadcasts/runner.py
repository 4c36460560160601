"""Workers: claim broadcasts by lease and send them (``relove run`` and ``relove worker``).

A worker polls for scheduled broadcasts that are due and running ones whose lease is free or
expired. Claiming is one atomic UPDATE … WHERE status … AND lease expired, so two workers never
send the same broadcast; the lease is renewed by the sender's heartbeat, and a worker that dies
loses it after ``broadcast_lease_seconds`` — then another worker resumes the broadcast, marking
what was in flight ``unknown``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.broadcasts.base import Send
from relove.broadcasts.models import Broadcast, BroadcastStatus
from relove.broadcasts.sender import BroadcastSender, SenderOptions, SenderReport
from relove.broadcasts.service import (
    BroadcastStats,
    StateConflict,
    get_broadcast,
    start_broadcast,
    stats,
    template_of,
)
from relove.broadcasts.store import SqlDeliveryStore, claim_running, claimable_ids
from relove.config import Settings
from relove.db.engine import create_session_factory
from relove.errors import InvalidInput
from relove.ops import metrics
from relove.ops.logs import log_context
from relove.telegram.ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: Called while a broadcast runs (every ``progress_every`` s) and once when it stops (final).
ProgressHook = Callable[[Broadcast, BroadcastStats, bool], Awaitable[None]]
SendFactory = Callable[[bool], Send]


def worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class BroadcastRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        send_factory: SendFactory,
        limiter: RateLimiter,
        settings: Settings,
        *,
        progress: ProgressHook | None = None,
        progress_every: float = 3.0,
        sender_options: SenderOptions | None = None,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = create_session_factory(engine)
        self.send_factory = send_factory
        self.limiter = limiter
        self.settings = settings
        self.progress = progress
        self.progress_every = progress_every
        self.owner = owner or worker_id()
        self.lease_ttl = settings.broadcast_lease_seconds
        self.poll_every = settings.broadcast_poll_seconds
        self._base_options = sender_options
        self._tasks: dict[int, asyncio.Task[SenderReport | None]] = {}
        self._senders: dict[int, BroadcastSender] = {}

    # --- options -----------------------------------------------------------------------------
    def options_for(self, broadcast: Broadcast) -> tuple[float, SenderOptions]:
        s = self.settings
        opts = broadcast.options or {}
        paid = bool(opts.get("paid"))
        default = s.broadcast_paid_rate if paid else s.broadcast_rate
        rate = float(opts.get("rate") or default)
        base = self._base_options or SenderOptions(
            concurrency=s.broadcast_concurrency, max_attempts=s.broadcast_max_attempts,
        )
        options = replace(base)
        options.max_errors = int(opts.get("max_errors") or s.broadcast_max_errors)
        options.lease_ttl = self.lease_ttl
        options.heartbeat_every = min(options.heartbeat_every, self.lease_ttl / 3)
        return rate, options

    # --- claiming ----------------------------------------------------------------------------
    async def claim_due(self) -> list[int]:
        """Claim what is due or orphaned and start sending it; the ids started."""
        started: list[int] = []
        due, orphaned = await claimable_ids(self.engine)
        for broadcast_id in due:
            if broadcast_id in self._tasks:
                continue
            if await self._start_scheduled(broadcast_id):
                started.append(broadcast_id)
        for broadcast_id in orphaned:
            if broadcast_id in self._tasks:
                continue
            if await claim_running(self.engine, broadcast_id, self.owner, self.lease_ttl):
                started.append(broadcast_id)
        for broadcast_id in started:
            self._launch(broadcast_id)
        return started

    async def _start_scheduled(self, broadcast_id: int) -> bool:
        async with self.sessions() as session:
            try:
                count = await start_broadcast(
                    session, broadcast_id, owner=self.owner, lease_ttl=self.lease_ttl,
                    statuses=[BroadcastStatus.scheduled],
                )
                await session.commit()
            except StateConflict:
                await session.rollback()
                return False
            except InvalidInput as e:  # the filter or template no longer holds
                await session.rollback()
                log.error("broadcast %s cannot start: %s", broadcast_id, e)
                await session.execute(
                    update(Broadcast)
                    .where(Broadcast.id == broadcast_id,
                           Broadcast.status == BroadcastStatus.scheduled)
                    .values(status=BroadcastStatus.failed, reason=str(e))
                )
                await session.commit()
                return False
        log.info("broadcast %s started: %s recipients", broadcast_id, count)
        return count > 0

    def _launch(self, broadcast_id: int) -> None:
        task = asyncio.create_task(self.run_claimed(broadcast_id))
        self._tasks[broadcast_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(broadcast_id, None))

    # --- sending -----------------------------------------------------------------------------
    async def run_claimed(self, broadcast_id: int) -> SenderReport | None:
        """Send a broadcast whose lease this runner holds, until it finishes or stops."""
        metrics.BROADCASTS_RUNNING.inc()
        try:
            with log_context(broadcast_id=broadcast_id):
                return await self._send_claimed(broadcast_id)
        finally:
            metrics.BROADCASTS_RUNNING.dec()

    async def _send_claimed(self, broadcast_id: int) -> SenderReport | None:
        try:
            async with self.sessions() as session:
                broadcast = await get_broadcast(session, broadcast_id)
            rate, options = self.options_for(broadcast)
            template = template_of(broadcast)
            text = broadcast.text
            store = SqlDeliveryStore(
                self.engine, with_markers="markers" in text or "user" in text,
                with_context="context" in text,
            )
            sender = BroadcastSender(
                broadcast_id, self.owner, template, store, self.send_factory(broadcast.paid),
                self.limiter.lane(rate, paid=broadcast.paid), options,
            )
            self._senders[broadcast_id] = sender
            log.info("broadcast %s: sending at %s/s%s", broadcast_id, rate,
                     " (paid)" if broadcast.paid else "")
            reporter = asyncio.create_task(self._report_progress(broadcast_id))
            try:
                report = await sender.run()
            finally:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
            log.info("broadcast %s: %s after %.1fs, %s", broadcast_id, report.stopped,
                     report.elapsed, dict(report.counts))
            await self._notify(broadcast_id, final=True)
            return report
        except Exception:
            log.exception("broadcast %s: sending failed", broadcast_id)
            return None
        finally:
            self._senders.pop(broadcast_id, None)

    async def _notify(self, broadcast_id: int, *, final: bool) -> None:
        if self.progress is None:
            return
        try:
            async with self.sessions() as session:
                broadcast = await get_broadcast(session, broadcast_id)
                current = await stats(session, broadcast_id)
            await self.progress(broadcast, current, final)
        except Exception:
            log.warning("broadcast %s: progress report failed", broadcast_id, exc_info=True)

    async def _report_progress(self, broadcast_id: int) -> None:
        while True:
            await asyncio.sleep(self.progress_every)
            await self._notify(broadcast_id, final=False)

    # --- lifecycle ---------------------------------------------------------------------------
    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        log.info("broadcast worker %s polling every %ss", self.owner, self.poll_every)
        try:
            while not stop.is_set():
                try:
                    await self.claim_due()
                except Exception:
                    log.exception("broadcast worker: claiming failed")
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_every)
                except TimeoutError:
                    pass
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop taking deliveries, let in-flight messages finish, record them, release leases."""
        for sender in list(self._senders.values()):
            sender.stop("shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
