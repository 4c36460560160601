"""The sending loop of one broadcast: paced, bounded, resumable, and never sending twice.

Per chunk of pending deliveries (pages are read by last id, so memory stays flat):

1. per message, take a window slot (see below), then a rate slot from the broadcast's lane (the
   bot's shared limiter); chunks are ~10 ms of sending, so a slot waits little for its chunk;
2. mark the chunk ``sending`` in one UPDATE and commit — BEFORE any Bot API call; the UPDATE
   only succeeds while this worker holds the running broadcast's lease, so a paused, cancelled
   or taken-over broadcast stops within one chunk. This runs in the background: the next chunk
   is paced meanwhile, and the next page is read while this one is sent;
3. send each message concurrently; a 429 pauses every sender for ``retry_after`` (messages
   that already hold a rate slot wait for it too, right before their call) and the same message
   is tried again; an error after which nothing can have been sent (connection refused, DNS,
   connect timeout) is retried with backoff up to ``max_attempts``; anything that may have been
   delivered (a timeout or dropped connection after the request went out, 5xx) is recorded
   ``unknown`` and never resent silently;
4. outcomes are written in grouped UPDATEs by a single writer, as soon as a quarter of the
   window (or ``flush_every`` seconds' worth) has finished — the window slot is freed only then.
   A failed write is retried on a timer; if the store keeps failing for ``store_patience``
   seconds the sender stops ("store error"), stops renewing its lease, and the rows it could
   not record stay ``sending`` — the next worker marks them ``unknown``.

Rows are ``sending`` from step 2 until their outcome is committed, and at most ``concurrency``
rows are ever in that state (a semaphore counts them), so a kill -9 leaves at most
``concurrency`` deliveries ambiguous; the next worker marks them ``unknown`` and never resends
them silently. Failed deliveries (not blocked users) past ``max_errors`` pause the broadcast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from relove.broadcasts.base import (
    DeliveryResult,
    DeliveryStore,
    Outcome,
    PendingDelivery,
    Send,
    SendResult,
)
from relove.broadcasts.content import MessageTemplate
from relove.broadcasts.models import BroadcastStatus, DeliveryStatus
from relove.db.types import utcnow
from relove.ops import metrics
from relove.telegram.ratelimit import BroadcastLane
from relove.templating import TemplateRenderError

log = logging.getLogger(__name__)

_STATUS = {
    Outcome.sent: DeliveryStatus.sent,
    Outcome.blocked: DeliveryStatus.blocked,
    Outcome.failed: DeliveryStatus.failed,
    Outcome.transient: DeliveryStatus.failed,
    Outcome.retry_after: DeliveryStatus.failed,
    Outcome.unknown: DeliveryStatus.unknown,
}
_COUNTED_AS_ERRORS = (DeliveryStatus.failed, DeliveryStatus.unknown)
STORE_ERROR = "store error"


@dataclass(slots=True)
class SenderOptions:
    #: rows in ``sending`` at once (the most a crash can leave ``unknown``)
    concurrency: int = 50
    #: pending rows read per query
    page_size: int = 500
    #: attempts per message when nothing was sent (connection refused, DNS, connect timeout)
    max_attempts: int = 3
    #: failed (or unknown) deliveries in one run before the broadcast pauses
    max_errors: int = 1000
    #: first backoff after a network error / 5xx, doubled each attempt
    backoff: float = 1.0
    #: 429s for one message before it is given up as failed
    max_retry_after: int = 10
    #: lease length and how often it is renewed
    lease_ttl: float = 30.0
    heartbeat_every: float = 5.0
    #: how long outcomes may wait before they are written, and how many make a write at once
    #: (at most a quarter of ``concurrency``: slots are freed only when their outcome is written)
    flush_every: float = 0.01
    flush_size: int = 200
    #: seconds of sending marked ``sending`` in one UPDATE (at least one message)
    chunk_seconds: float = 0.01
    #: how long outcome writes may keep failing (retried every ``store_retry_every``) before
    #: the sender stops; ``None``: the lease length
    store_patience: float | None = None
    store_retry_every: float = 0.5


@dataclass(slots=True)
class SenderReport:
    counts: Counter[str] = field(default_factory=Counter)
    retries_429: int = 0
    retries_transient: int = 0
    errors: int = 0
    #: why the run ended: finished, paused, cancelled, lost, errors
    stopped: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

class BroadcastSender:
    def __init__(
        self,
        broadcast_id: int,
        owner: str,
        template: MessageTemplate,
        store: DeliveryStore,
        send: Send,
        lane: BroadcastLane,
        options: SenderOptions | None = None,
    ) -> None:
        self.broadcast_id = broadcast_id
        self.owner = owner
        self.template = template
        self.store = store
        self.send = send
        self.lane = lane
        self.options = options or SenderOptions()
        self.report = SenderReport()
        self._window = asyncio.Semaphore(self.options.concurrency)
        self._results: list[DeliveryResult] = []
        self._flush_size = max(1, min(self.options.flush_size, self.options.concurrency // 4))
        self._has_results = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop: str | None = None
        self._stopped = asyncio.Event()
        self._end_heartbeat = asyncio.Event()
        self._closing = False
        self._flush_lock = asyncio.Lock()
        self._flushed = asyncio.Event()
        self._store_failing_since: float | None = None

    # --- control -----------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Stop taking new deliveries; messages in flight still complete and are recorded."""
        if self._stop is None:
            self._stop = reason
            self._stopped.set()
            log.info("broadcast %s: stopping (%s)", self.broadcast_id, reason)

    @property
    def stopping(self) -> bool:
        return self._stop is not None

    # --- main loop ---------------------------------------------------------------------------
    async def run(self) -> SenderReport:
        writer = asyncio.create_task(self._writer())
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not self.stopping:
                await self._produce()
                await self._drain()
                if self.stopping:
                    break
                if await self.store.finish(self.broadcast_id, self.owner):
                    self.stop("finished")
                else:  # rows still in flight elsewhere: look again shortly
                    await asyncio.sleep(self.options.heartbeat_every / 5)
        except Exception:
            log.exception("broadcast %s: sending stopped by an error", self.broadcast_id)
            self.stop(STORE_ERROR)
        finally:
            try:
                await self._drain()
            finally:
                # never cancel a renewal mid-statement: a cancelled SQLite statement can leave
                # its connection holding the write lock; the loop ends at its next wait instead
                self._end_heartbeat.set()
                self._closing = True
                self._has_results.set()
                self._flush_now.set()
                await asyncio.gather(heartbeat, writer, return_exceptions=True)
                await self._close()
        self.report.stopped = self._stop or "finished"
        self.report.ended = time.monotonic()
        return self.report

    async def _close(self) -> None:
        """Write what is left, pause on too many errors, give up the lease — each step on its
        own: if the store fails, the lease simply lapses and the next worker marks the rows
        still ``sending`` as ``unknown``."""
        try:
            await self._flush(attempts=1 if self._stop == STORE_ERROR else 3)
        except Exception:
            log.error("broadcast %s: %s outcomes could not be written; those deliveries stay "
                      "'sending' and become 'unknown'", self.broadcast_id, len(self._results),
                      exc_info=True)
            self._results.clear()
            self.stop(STORE_ERROR)
        if self._stop == STORE_ERROR:
            return  # the store is failing: let the lease lapse
        try:
            if self._stop == "errors":
                await self.store.pause(
                    self.broadcast_id,
                    self.owner,
                    f"paused after {self.report.errors} failed deliveries "
                    f"(limit {self.options.max_errors})",
                )
            await self.store.release(self.broadcast_id, self.owner)
        except Exception:
            log.exception("broadcast %s: releasing the lease failed (it lapses)",
                          self.broadcast_id)

    async def _produce(self) -> None:
        """Dispatch every pending delivery once; the next page is read while this one is sent."""
        opts = self.options
        chunk_size = max(1, min(opts.concurrency // 4, int(self.lane.rate * opts.chunk_seconds)))
        next_page = asyncio.create_task(
            self.store.next_pending(self.broadcast_id, 0, opts.page_size))
        try:
            while not self.stopping:
                page = await next_page
                if not page:
                    return
                next_page = asyncio.create_task(self.store.next_pending(
                    self.broadcast_id, page[-1].delivery_id, opts.page_size))
                for start in range(0, len(page), chunk_size):
                    if self.stopping:
                        return
                    await self._dispatch(page[start : start + chunk_size])
        finally:
            # let a prefetch in flight finish (one short read) rather than cancel a statement
            await asyncio.gather(next_page, return_exceptions=True)

    async def _dispatch(self, chunk: list[PendingDelivery]) -> None:
        """Take a window slot and a rate slot per message, then mark the chunk ``sending`` and
        send it in the background, so pacing the next chunk does not wait for the database."""
        held = 0
        for _ in chunk:  # a slot is held only from its own rate slot on, not the chunk's first
            if not await self._slot():
                break
            held += 1
            await self.lane.acquire()
        if self.stopping:
            self._release(held)
            return
        self._spawn(self._launch(chunk))

    async def _slot(self) -> bool:
        """A window slot, or False once the sender stops (slots may never free up when the
        store fails)."""
        if not self._window.locked():
            await self._window.acquire()
            return True
        if self.stopping:
            return False
        acquire = asyncio.ensure_future(self._window.acquire())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((acquire, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not acquire.done():
                acquire.cancel()
            await asyncio.gather(acquire, stopped, return_exceptions=True)
        got = acquire.done() and not acquire.cancelled() and acquire.exception() is None
        if got and self.stopping:
            self._window.release()
            return False
        return got

    async def _launch(self, chunk: list[PendingDelivery]) -> None:
        try:
            moved = await self.store.mark_sending(
                self.broadcast_id, self.owner, [d.delivery_id for d in chunk]
            )
        except Exception:
            self._release(len(chunk))
            log.exception("broadcast %s: marking deliveries sending failed", self.broadcast_id)
            self.stop("store error")
            return
        self._release(len(chunk) - len(moved))
        if not moved:  # paused, cancelled or taken over? (nothing was sent from this chunk)
            try:
                status = await self.store.heartbeat(
                    self.broadcast_id, self.owner, self.options.lease_ttl
                )
            except Exception:
                log.exception("broadcast %s: heartbeat failed", self.broadcast_id)
                self.stop("store error")
                return
            if status is None or status != BroadcastStatus.running:
                self.stop(str(status or "lost"))
            return
        for delivery in chunk:
            if delivery.delivery_id in moved:
                self._spawn(self._deliver(delivery))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, n: int) -> None:
        for _ in range(n):
            self._window.release()

    async def _drain(self) -> None:
        """Wait for the messages in flight and for the writer to record their outcomes (it
        retries failed writes; a store failing for good stops the sender instead)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        while self._results and self._stop != STORE_ERROR and not self._closing:
            self._flushed.clear()
            self._flush_now.set()
            self._has_results.set()
            await self._flushed.wait()

    # --- one delivery ------------------------------------------------------------------------
    async def _deliver(self, delivery: PendingDelivery) -> None:
        try:
            result = await self._attempt(delivery)
        except Exception as e:  # a bug in a send implementation must not lose the state
            log.exception("broadcast %s: delivery %s crashed", self.broadcast_id,
                          delivery.delivery_id)
            result = self._result(delivery, delivery.attempts + 1,
                                  SendResult(Outcome.failed, error=f"internal error: {e}"))
        self._results.append(result)
        self._has_results.set()
        if len(self._results) >= self._flush_size:
            self._flush_now.set()

    async def _attempt(self, delivery: PendingDelivery) -> DeliveryResult:
        opts = self.options
        try:
            message = await self.template.arender(delivery.recipient)
        except TemplateRenderError as e:
            failed = SendResult(Outcome.failed, error=str(e))
            return self._result(delivery, delivery.attempts, failed)
        attempts = delivery.attempts
        transient = throttled = 0
        first = True
        while True:
            if not first:
                await self.lane.acquire()
            first = False
            await self.lane.parent.acquire_chat(delivery.recipient.id)
            # a 429 may have come while this message waited: its rate slot is no licence to
            # send during ``retry_after``
            await self.lane.parent.wait_pause()
            attempts += 1
            result = await self.send(delivery.recipient, message)
            if result.outcome is Outcome.retry_after:
                throttled += 1
                self.report.retries_429 += 1
                await self.lane.pause(result.retry_after or 1.0)
                log.warning("broadcast %s: 429, all sending paused for %ss",
                            self.broadcast_id, result.retry_after)
                if throttled < opts.max_retry_after:
                    continue
            elif result.outcome is Outcome.transient:
                transient += 1
                self.report.retries_transient += 1
                if transient < opts.max_attempts:
                    await asyncio.sleep(opts.backoff * 2 ** (transient - 1))
                    continue
            return self._result(delivery, attempts, result)

    def _result(
        self, delivery: PendingDelivery, attempts: int, result: SendResult
    ) -> DeliveryResult:
        status = _STATUS[result.outcome]
        self.report.counts[status.value] += 1
        if status in _COUNTED_AS_ERRORS:
            self.report.errors += 1
            if self.report.errors >= self.options.max_errors:
                self.stop("errors")
        return DeliveryResult(
            delivery_id=delivery.delivery_id,
            user_id=delivery.recipient.id,
            status=status,
            attempts=attempts,
            message_id=result.message_id,
            error=result.error,
            sent_at=utcnow() if status is DeliveryStatus.sent else None,
        )

    # --- writing outcomes --------------------------------------------------------------------
    async def _flush(self, attempts: int = 1) -> None:
        """Write the waiting outcomes and free their window slots; on failure they stay
        waiting (and their slots busy) and the error is raised."""
        async with self._flush_lock:
            if not self._results:
                return
            batch, self._results = self._results, []
            for attempt in range(attempts):
                try:
                    await self.store.record(self.broadcast_id, batch)
                    for result in batch:
                        metrics.BROADCAST_DELIVERIES.labels(result.status.value).inc()
                    break
                except Exception:
                    if attempt == attempts - 1:
                        self._results[:0] = batch
                        raise
                    await asyncio.sleep(self.options.store_retry_every)
            self._release(len(batch))

    async def _writer(self) -> None:
        """Write outcomes once ``flush_size`` are waiting, or ``flush_every`` after the first;
        retry a failed write every ``store_retry_every`` seconds, and stop the sender if the
        store keeps failing for ``store_patience``."""
        opts = self.options
        patience = opts.store_patience if opts.store_patience is not None else opts.lease_ttl
        loop = asyncio.get_running_loop()
        while not self._closing:
            if not self._results:
                await self._has_results.wait()
            if not self._closing and len(self._results) < self._flush_size:
                try:
                    await asyncio.wait_for(self._flush_now.wait(), opts.flush_every)
                except TimeoutError:
                    pass
            self._flush_now.clear()
            self._has_results.clear()
            try:
                await self._flush()
                self._store_failing_since = None
            except Exception:
                now = loop.time()
                if self._store_failing_since is None:
                    self._store_failing_since = now
                log.warning("broadcast %s: writing %s outcomes failed, retrying in %ss",
                            self.broadcast_id, len(self._results), opts.store_retry_every,
                            exc_info=True)
                if now - self._store_failing_since >= patience:
                    log.error("broadcast %s: outcomes could not be written for %.0fs",
                              self.broadcast_id, now - self._store_failing_since)
                    self.stop(STORE_ERROR)
                    self._flushed.set()
                    return
                await asyncio.sleep(opts.store_retry_every)
            finally:
                self._flushed.set()

    async def _heartbeat(self) -> None:
        """Renew the lease; a failed renewal is retried sooner (the lease lasts several
        periods). The lease is only given up for lost when another worker holds it (the
        ``sending`` UPDATE also checks it has not expired); after a store error the sender
        stops renewing, so the lease lapses and its ``sending`` rows become ``unknown``."""
        opts = self.options
        delay = opts.heartbeat_every
        while self._stop != STORE_ERROR:
            try:
                await asyncio.wait_for(self._end_heartbeat.wait(), delay)
                return
            except TimeoutError:
                pass
            if self._stop == STORE_ERROR:
                return
            try:
                status = await self.store.heartbeat(self.broadcast_id, self.owner, opts.lease_ttl)
            except Exception:
                delay = max(0.05, min(opts.heartbeat_every, opts.lease_ttl / 10))
                log.warning("broadcast %s: renewing the lease failed, retrying in %ss",
                            self.broadcast_id, delay, exc_info=True)
                continue
            delay = opts.heartbeat_every
            if status is None:
                self.stop("lost")
            elif status != BroadcastStatus.running:
                self.stop(str(status))
