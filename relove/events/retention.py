"""Keeping history in bounds: partitions ahead, old events and messages out.

* events older than ``RELOVE_EVENTS_RETENTION_DAYS``: PostgreSQL drops whole monthly partitions
  (a month goes once all of it is past the cutoff — instant, no vacuum debt); SQLite deletes in
  batches, one short transaction each, so the bot's writes interleave;
* the conversation (``messages``) older than ``RELOVE_MESSAGES_RETENTION_DAYS``: batched deletes
  on both databases;
* PostgreSQL partitions for the coming months are created ahead (and rows that landed in the
  default partition moved into theirs).

:class:`HistoryMaintenance` runs all of it at start-up and then every few hours inside
``relove worker`` and ``relove run``; ``relove events prune`` runs it on demand.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.config import Settings
from relove.db.types import UTCDateTime, utcnow
from relove.events.activity import prune_activity
from relove.events.partitions import (
    add_months,
    drop_partitions_before,
    ensure_partitions,
    partition_start,
)

log = logging.getLogger(__name__)

DELETE_BATCH = 10_000
#: How often the maintenance runs inside long-lived processes.
MAINTENANCE_EVERY_S = 6 * 3600


@dataclass
class PruneReport:
    events_cutoff: datetime
    messages_cutoff: datetime
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    events_deleted: int = 0
    messages_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["events_cutoff"] = self.events_cutoff.isoformat()
        data["messages_cutoff"] = self.messages_cutoff.isoformat()
        return data


async def ensure_ahead(engine: AsyncEngine, *, now: datetime | None = None) -> list[str]:
    """Create the coming months' partitions (PostgreSQL; nothing to do on SQLite)."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.begin() as conn:
        return await conn.run_sync(lambda c: ensure_partitions(c, now=now))


async def _delete_in_batches(engine: AsyncEngine, table: str, cutoff: datetime, batch: int) -> int:
    stmt = text(
        f"DELETE FROM {table} WHERE id IN "
        f"(SELECT id FROM {table} WHERE at < :cutoff LIMIT :n)"
    ).bindparams(bindparam("cutoff", type_=UTCDateTime()))
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(stmt, {"cutoff": cutoff, "n": batch})).rowcount or 0
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # let the bot's writes in between batches


async def prune(
    engine: AsyncEngine,
    *,
    events_days: int,
    messages_days: int,
    now: datetime | None = None,
    batch: int = DELETE_BATCH,
) -> PruneReport:
    """Apply both retentions (and create partitions ahead). Safe to run from several
    processes at once."""
    now = now or utcnow()
    report = PruneReport(now - timedelta(days=events_days), now - timedelta(days=messages_days))
    if engine.dialect.name == "postgresql":
        report.partitions_created = await ensure_ahead(engine, now=now)
        async with engine.begin() as conn:
            report.partitions_dropped = await conn.run_sync(
                lambda c: drop_partitions_before(c, report.events_cutoff)
            )
        if report.partitions_dropped:
            # No trigger sees a dropped partition: the rollup's days before the kept months go
            # here (SQLite's deletes above go row by row, through the triggers).
            kept_from = max(add_months(partition_start(n), 1) for n in report.partitions_dropped)
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: prune_activity(c, kept_from))
    else:
        report.events_deleted = await _delete_in_batches(
            engine, "events", report.events_cutoff, batch
        )
    report.messages_deleted = await _delete_in_batches(
        engine, "messages", report.messages_cutoff, batch
    )
    return report


class HistoryMaintenance:
    """Runs :func:`prune` now and every ``every`` seconds until stopped."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        events_days: int,
        messages_days: int,
        every: float = MAINTENANCE_EVERY_S,
    ) -> None:
        self.engine = engine
        self.events_days = events_days
        self.messages_days = messages_days
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> HistoryMaintenance:
        return cls(engine, events_days=settings.events_retention_days,
                   messages_days=settings.messages_retention_days)  # fmt: skip

    async def run_once(self) -> PruneReport | None:
        try:
            report = await prune(
                self.engine, events_days=self.events_days, messages_days=self.messages_days
            )
        except Exception as e:  # never take the bot or worker down; try again next time
            log.warning("history maintenance failed: %s", e)
            return None
        if report.partitions_dropped or report.events_deleted or report.messages_deleted:
            log.info("history maintenance: %s", report.to_dict())
        return report

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.run_once()
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                pass

    # A dispatcher's start-up / shutdown hooks (``relove run``).
    async def start(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self.run_forever(self._stop))

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
