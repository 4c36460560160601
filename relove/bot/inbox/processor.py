"""Claimed inbox updates through the same pipeline as polling (:class:`relove.bot.ingest.Ingest`).

One loop claims free lanes (users) while the pipeline has room and hands their updates to the
pipeline as a page (one touch batch, one lane per user, as in polling); the pipeline reports
each finished update (``on_settled``), and a second loop marks them processed in batches —
continuing a lane with the updates that arrived meanwhile, or releasing it. A third loop renews
the leases; a fourth prunes processed rows. A slow user holds only their own lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiogram import Bot
from aiogram.types import Update
from pydantic import ValidationError

from relove.bot.inbox.store import TOUCHED, Inbox, InboxRow
from relove.bot.ingest import Ingest
from relove.db.health import classify, describe
from relove.ops import metrics
from relove.ops.health import Check, NotReady

log = logging.getLogger(__name__)


@dataclass
class InboxStats:
    """Counters since start (metrics hook them: see :meth:`InboxProcessor.counters`)."""

    claimed: int = 0  #: updates taken from the inbox into the pipeline
    processed: int = 0  #: updates marked processed (any outcome)
    failed: int = 0  #: … of which failed or were dropped
    lanes: int = 0  #: lanes (users) claimed
    replayed: int = 0  #: taken over after a crash with their touch already recorded
    lapsed: int = 0  #: lanes lost while in work here (lease ran out): may run twice
    pruned: int = 0


class InboxProcessor:
    def __init__(
        self,
        inbox: Inbox,
        ingest: Ingest,
        bot: Bot,
        *,
        poll_interval: float = 0.5,
        claim_lanes: int = 200,
        keep: timedelta = timedelta(hours=24),
        prune_every: float = 60.0,
    ) -> None:
        self.inbox = inbox
        self.ingest = ingest
        self.bot = bot
        self.health = ingest.health
        self.poll_interval = poll_interval
        self.claim_lanes = claim_lanes
        self.keep = keep
        self.prune_every = prune_every
        self.stats = InboxStats()
        ingest.on_settled = self._settled
        if ingest.writer.stamp != TOUCHED:
            raise ValueError("the touch writer must stamp inbox updates (stamp=TOUCHED)")
        self._lane_of: dict[int, int] = {}  # update id -> lane, while in the pipeline
        self._open: dict[int, int] = {}  # lane -> updates in the pipeline
        self._done: list[tuple[int, str]] = []
        self._finished: set[int] = set()  # lanes with every claimed update done
        self._held: set[int] = set()  # update ids fed and not yet recorded as processed
        self._wake = asyncio.Event()
        self._flush = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._claiming = True
        self._tasks: list[asyncio.Task[Any]] = []

    # -- control --------------------------------------------------------------------------------
    def wake(self) -> None:
        """A new update was recorded here: claim now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="inbox-claim"),
            asyncio.create_task(self._flush_loop(), name="inbox-flush"),
            asyncio.create_task(self._every(self.inbox.lease.total_seconds() / 3, self._renew),
                                name="inbox-renew"),  # fmt: skip
            asyncio.create_task(self._every(self.prune_every, self._prune), name="inbox-prune"),
        ]

    async def stop(self, drain_timeout: float) -> None:
        """Stop claiming, finish what is in flight (bounded), record it, release the lanes."""
        self._claiming = False
        self._wake.set()
        if not await self.ingest.drain(drain_timeout):
            log.warning("stopping with %d updates unfinished: other instances take them over",
                        self.ingest.pending)  # fmt: skip
        flusher = self._tasks[1] if len(self._tasks) > 1 else None
        others = [task for task in self._tasks if task is not flusher]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._flush_once(final=True)  # after a flush under way (the lock)
        if flusher is not None:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        with contextlib.suppress(Exception):
            released = await self.inbox.release_all()
            log.info("released %d lanes", released)
        await self.ingest.close(0)

    def counters(self) -> dict[str, float]:
        """Plain numbers for metrics (updates claimed / processed / failed, in flight)."""
        s = self.stats
        return {"claimed": s.claimed, "processed": s.processed, "failed": s.failed,
                "lanes": s.lanes, "replayed": s.replayed, "in_flight": self.ingest.pending,
                "pruned": s.pruned, "lapsed": s.lapsed}  # fmt: skip

    async def lag(self) -> tuple[int, float]:
        """Unprocessed updates in the inbox (all instances) and the oldest one's age (s)."""
        return await self.inbox.backlog()

    # -- claiming -------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while self._claiming:
            room = self.ingest.max_pending - self.ingest.pending
            rows: list[InboxRow] = []
            if room > 0 and self.health.available:
                try:
                    rows = await self.inbox.claim(min(self.claim_lanes, room))
                except Exception as e:  # noqa: BLE001 - an outage: wait for the database
                    self._database_failed(e, "claiming")
                else:
                    self.health.report_success()
            if rows and self._claiming:
                self.stats.lanes += len({row.lane for row in rows})
                await self._feed(rows)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _feed(self, rows: list[InboxRow]) -> None:
        updates: list[Update] = []
        replayed: set[int] = set()
        # A lane of ours may be won again if our lease lapsed (a stalled process): never feed
        # an update twice while it is in the pipeline or not yet recorded as processed.
        rows = [row for row in rows if row.update_id not in self._held]
        self._held.update(row.update_id for row in rows)
        for row in rows:
            try:
                update = Update.model_validate_json(row.payload, context={"bot": self.bot})
            except ValidationError as e:
                log.error("update %s not handled: not a valid update: %s", row.update_id,
                          str(e).splitlines()[0])  # fmt: skip
                self._done.append((row.update_id, "failed"))
                self._flush.set()
                continue
            self._lane_of[row.update_id] = row.lane
            self._open[row.lane] = self._open.get(row.lane, 0) + 1
            updates.append(update)
            if row.touched:
                replayed.add(row.update_id)
        for lane in {row.lane for row in rows} - set(self._open):
            self._finished.add(lane)  # nothing valid to run: release the lane
        self.stats.claimed += len(updates)
        self.stats.replayed += len(replayed)
        metrics.INBOX_REPLAYED.inc(len(replayed))
        if updates:
            # Each touch stamps its update in its own commit: a take-over after a crash
            # replays stamped updates without their events (exactly once).
            await self.ingest.put_page(updates, replayed=replayed, stamped=True)

    def _settled(self, update: Update, outcome: str) -> None:
        lane = self._lane_of.pop(update.update_id, None)
        if lane is None:
            return
        self._done.append((update.update_id, outcome))
        left = self._open[lane] - 1
        if left:
            self._open[lane] = left
        else:
            del self._open[lane]
            self._finished.add(lane)
        self._flush.set()

    # -- finishing ------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            if not await self._flush_once():
                await self.health.wait_available(timeout=1.0)
                await asyncio.sleep(0.05)
                self._flush.set()

    async def _flush_once(self, *, final: bool = False) -> bool:
        async with self._flush_lock:  # never cancelled half-way by stop()
            return await asyncio.shield(self._flush_unlocked(final))

    async def _flush_unlocked(self, final: bool) -> bool:
        if not self._done and not self._finished:
            return True
        done, self._done = self._done, []
        lanes = [lane for lane in self._finished if lane not in self._open]
        self._finished.clear()
        try:
            more = await self.inbox.finish(done, () if final else lanes)
        except Exception as e:  # noqa: BLE001 - kept for the next attempt
            self._done[:0] = done
            self._finished.update(lanes)
            self._database_failed(e, "recording processed updates")
            return False
        self.health.report_success()
        self._held.difference_update(update_id for update_id, _ in done)
        self.stats.processed += len(done)
        self.stats.failed += sum(1 for _, outcome in done if outcome != "handled")
        if more:
            await self._feed(more)
        return True

    # -- upkeep ---------------------------------------------------------------------------------
    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception as e:  # noqa: BLE001 - logged; the next round tries again
                self._database_failed(e, job.__name__.strip("_"))

    async def _renew(self) -> None:
        held = await self.inbox.renew()
        if held < len(self._open):
            self.stats.lapsed += len(self._open) - held
            metrics.INBOX_LAPSED.inc(len(self._open) - held)
            log.warning("%d lanes were taken over while still in work here: their lease ran "
                        "out (a stalled process? raise RELOVE_WEBHOOK_LEASE)",
                        len(self._open) - held)  # fmt: skip

    async def _prune(self) -> None:
        pruned = await self.inbox.prune(self.keep)
        self.stats.pruned += pruned
        if pruned:
            log.debug("pruned %d processed updates", pruned)

    def _database_failed(self, error: BaseException, doing: str) -> None:
        if classify(error) is not None:
            self.health.report_failure(error)  # one warning per outage
            log.debug("inbox: %s failed: %s", doing, describe(error))
        else:
            log.error("inbox: %s failed", doing, exc_info=error)


def inbox_probes(inbox: Inbox, max_lag: float) -> tuple[dict[str, Check], list[Callable[
        [], Awaitable[object]]]]:  # fmt: skip
    """The webhook process's readiness check ``inbox`` and its scrape-time gauges (the shared
    inbox's backlog: every instance reports the same figures). The check fails while the
    oldest unprocessed update is older than ``max_lag`` seconds (0: never fails)."""

    async def measure() -> dict[str, float]:
        pending, oldest = await inbox.backlog()
        metrics.INBOX_PENDING.set(pending)
        metrics.INBOX_OLDEST_SECONDS.set(oldest)
        return {"pending": pending, "oldest_age_seconds": round(oldest, 3)}

    async def check() -> dict[str, float]:
        figures = {**await measure(), "max_lag_seconds": max_lag}
        if max_lag and figures["oldest_age_seconds"] > max_lag:
            raise NotReady(f"inbox lag {figures['oldest_age_seconds']:.0f} s over "
                           f"RELOVE_WEBHOOK_READY_MAX_LAG ({max_lag:g} s)", figures)
        return figures

    return {"inbox": check}, [measure]
