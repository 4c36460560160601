"""The webhook worker inside ``relove worker``: dispatch events, claim deliveries, send them,
record the results — one loop, riding through database outages.

While the database is unreachable the loop waits (backing off up to 30 s) instead of crashing;
POSTs in flight finish, and their results are kept in memory and written when it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from relove.config import Settings
from relove.db.health import Failure, classify, describe
from relove.db.types import utcnow
from relove.webhooks.dispatcher import Dispatcher
from relove.webhooks.sender import SCHEDULE, OnDisabled, Result, Sender

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
#: seconds to let more attempts finish before recording a batch of results
COALESCE = 0.01


class WebhookWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_disabled: OnDisabled | None = None,
        schedule: tuple[float, ...] = SCHEDULE,
        lease_seconds: float | None = None,
    ) -> None:
        s = settings
        self.concurrency = s.webhooks_concurrency
        self.poll = s.webhooks_poll_seconds
        self.dispatcher = Dispatcher(engine, gap_max_seconds=s.webhooks_gap_max_seconds,
                                     clock=clock)
        self.sender = Sender(
            engine, timeout=s.webhooks_timeout, allow_private=s.webhooks_allow_private,
            endpoint_concurrency=s.webhooks_endpoint_concurrency,
            disable_after=timedelta(days=s.webhooks_disable_after_days), schedule=schedule,
            lease_seconds=lease_seconds, clock=clock, on_disabled=on_disabled,
            max_connections=s.webhooks_concurrency,
        )
        self._tasks: set[asyncio.Task[Result]] = set()
        self._results: list[Result] = []
        self._wake = asyncio.Event()
        self._dispatch_due = 0.0
        self._claim_due = 0.0
        self.outage = False

    def _done(self, task: asyncio.Task[Result]) -> None:
        self._tasks.discard(task)
        self.sender.inflight[task_endpoint(task)] -= 1
        if not task.cancelled() and task.exception() is None:
            self._results.append(task.result())
        elif not task.cancelled():
            log.error("webhook attempt crashed", exc_info=task.exception())
        self._wake.set()

    async def step(self) -> bool:
        """Dispatch, record, claim; True when there was work (poll again at once). An idle
        dispatcher or an empty claim is retried after the poll interval, not on every wake."""
        busy = False
        now = time.monotonic()
        if now >= self._dispatch_due:
            if await self.dispatcher.step():
                busy = True
                self._claim_due = 0.0  # new deliveries
            else:
                self._dispatch_due = now + self.poll
        if self._results:
            results, self._results = self._results, []
            try:
                await self.sender.record(results)
            except BaseException:
                self._results[:0] = results  # written when the database answers again
                raise
            busy = True
            self._claim_due = 0.0  # retries may be due, slots are free
        free = self.concurrency - len(self._tasks)
        if free > 0 and now >= self._claim_due:
            claimed = await self.sender.claim(free)
            if not claimed:
                self._claim_due = now + self.poll
            for c in claimed:
                self.sender.inflight[c.endpoint_id] += 1
                task = asyncio.create_task(self.sender.attempt(c))
                task.endpoint_id = c.endpoint_id  # type: ignore[attr-defined]
                self._tasks.add(task)
                task.add_done_callback(self._done)
                busy = True
        return busy

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        backoff = self.poll
        log.info("webhook worker running")
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    busy = await self.step()
                    if self.outage:
                        log.warning("webhooks: the database answers again; resuming")
                        self.outage = False
                    backoff = self.poll
                except Exception as e:
                    if classify(e) is Failure.outage:
                        if not self.outage:
                            log.warning("webhooks paused: the database is unreachable (%s)",
                                        describe(e))
                        self.outage = True
                    else:
                        log.exception("webhook worker: a step failed")
                    busy = False
                    backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF)
                    await _wait(stop, backoff)
                    continue
                if not busy:
                    await _wait_any(stop, self._wake, self.poll)
                    if self._wake.is_set() and self._tasks:
                        await asyncio.sleep(COALESCE)  # record finished attempts in batches
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Let POSTs in flight finish (their timeout bounds it) and record them."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._results:
            try:
                await self.sender.record(self._results)
                self._results = []
            except Exception as e:
                log.warning("webhooks: %s results not recorded at shutdown (%s); they will be "
                            "sent again with the same webhook-id", len(self._results),
                            describe(e))
        await self.sender.close()


def task_endpoint(task: asyncio.Task[Result]) -> int:
    return int(getattr(task, "endpoint_id", 0))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class Texts(Protocol):
    """The bot's texts (:class:`relove.bot.texts.Texts`): ``texts(key, **values)``."""

    def __call__(self, key: str, /, **values: Any) -> str: ...


class Call(Protocol):
    """A Bot API call (:meth:`relove.telegram.client.BotApiClient.call`)."""

    def __call__(self, method: str, body: dict[str, Any], /) -> Awaitable[Any]: ...


def tell_owners(call: Call, texts: Texts, owner_ids: Sequence[int]) -> OnDisabled:
    """``on_disabled`` that writes to the bot's admins (``RELOVE_ADMIN_IDS``) in Telegram."""

    async def on_disabled(endpoint_id: int, url: str, reason: str) -> None:
        text = texts("webhook_disabled", id=endpoint_id, url=url, reason=reason)
        for chat_id in owner_ids:
            await call("sendMessage", {"chat_id": chat_id, "text": text, "parse_mode": "HTML"})

    return on_disabled
