"""The automations worker: reload the file, take in triggers, run what is due (``relove worker``).

Each tick: the file is re-read when it changed (a broken file is logged and the previous
automations stay), the intake enters users from new events (:mod:`.intake`), then due runs are
claimed in batches and run concurrently (:mod:`.steps`). Claiming is one UPDATE of the due,
unleased rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers never wait for each other;
SQLite's single writer makes the UPDATE atomic) that sets this worker as ``owner`` for
``RELOVE_AUTOMATIONS_LEASE_SECONDS``; a worker that dies loses its runs when the lease lapses.

Time comes from an injectable ``clock`` (tests run a week-long sequence by moving it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.automations.definition import AutomationFile, AutomationFileError, load_automations
from relove.automations.flows import Labels
from relove.automations.intake import Intake
from relove.automations.localtime import zone
from relove.automations.models import ACTIVE, AutomationRun, AutomationState
from relove.automations.steps import ClaimedRun, RunExecutor, StepContext
from relove.automations.triggers import set_up_enters, take_schedules
from relove.broadcasts.base import Send
from relove.broadcasts.runner import worker_id
from relove.config import Settings, quiet_range
from relove.conversation.scenarios.registry import ScenarioRegistry
from relove.conversation.yamlfile import DefinitionError
from relove.db.engine import create_session_factory
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.errors import ReloveError
from relove.telegram.ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: Button labels when the caller gives none (the shipped Russian texts).
_DEFAULT_LABELS = {"scenario_done_button": "Готово ✓", "scenario_skip_button": "Пропустить"}

_R = AutomationRun.__table__


@dataclass(slots=True)
class RunnerOptions:
    rate: float = 25.0
    batch: int = 200
    concurrency: int = 50
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    event_lag_seconds: float = 2.0
    default_tz: tzinfo = UTC
    quiet_hours: tuple[int, int] | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> RunnerOptions:
        return cls(default_tz=zone(s.default_tz), quiet_hours=quiet_range(s.quiet_hours),
                   rate=s.automations_rate, batch=s.automations_batch,
                   concurrency=s.automations_concurrency,
                   lease_seconds=s.automations_lease_seconds,
                   poll_seconds=s.automations_poll_seconds,
                   event_lag_seconds=s.automations_event_lag_seconds)  # fmt: skip


class AutomationRunner:
    def __init__(
        self, engine: AsyncEngine, send: Send, limiter: RateLimiter, *,
        automations: AutomationFile | None = None, path: Path | None = None,
        clock: Callable[[], datetime] = utcnow, admin_ids: tuple[int, ...] = (),
        options: RunnerOptions | None = None, owner: str | None = None,
        scenarios: ScenarioRegistry | None = None, labels: Labels | None = None,
    ) -> None:
        """``scenarios``: the flows ``start_flow`` starts (re-read with the automations file
        when its own file changed); ``labels``: the bot's texts for a question's done / skip
        buttons."""
        self.engine = engine
        self.scenarios = scenarios
        self._scenarios_mtime: float | None = self._scenarios_stat()
        self.sessions = create_session_factory(engine)
        self.options = opts = options or RunnerOptions()
        self.clock = clock
        self.owner = owner or worker_id()
        self.path = Path(path) if path else None
        self.automations = automations or AutomationFile()
        self._mtime: float | None = None
        if automations is None and self.path is not None:
            self.reload(strict=True)
        self.intake = Intake(lag=opts.event_lag_seconds)
        lane = limiter.lane(opts.rate)
        self.executor = RunExecutor(StepContext(
            self.owner, clock, send, lane, admin_ids, default_tz=opts.default_tz,
            quiet_hours=opts.quiet_hours, scenarios=scenarios,
            labels=labels or _DEFAULT_LABELS.__getitem__))
        self._slots = asyncio.Semaphore(opts.concurrency)

    @classmethod
    def from_settings(cls, engine: AsyncEngine, send: Send, limiter: RateLimiter,
                      settings: Settings, labels: Labels | None = None,
                      ) -> AutomationRunner:  # fmt: skip
        scenarios = ScenarioRegistry.from_file(settings.scenarios_file)
        return cls(engine, send, limiter, path=settings.automations_file,
                   admin_ids=tuple(settings.admin_ids),
                   options=RunnerOptions.from_settings(settings), scenarios=scenarios,
                   labels=labels)  # fmt: skip

    # --- the file ----------------------------------------------------------------------------
    def reload(self, *, strict: bool = False) -> bool:
        """Re-read the file if it changed; a broken file keeps the previous automations (or,
        ``strict``, raises). True when new automations were taken."""
        if self.path is None:
            return False
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as e:
            if strict:
                raise AutomationFileError([f"{self.path}: cannot read the file: {e}"]) from None
            return False
        scenarios_changed = self._reload_scenarios()
        if mtime == self._mtime and not scenarios_changed:
            return False
        self._mtime = mtime
        flows = None if self.scenarios is None or self.scenarios.path is None else {
            f.id for f in self.scenarios.flows}  # fmt: skip
        try:
            self.automations = load_automations(self.path, flows)
        except AutomationFileError as e:
            if strict:
                raise
            log.error("automations: %s is refused, the previous automations stay:\n%s",
                      self.path, e)  # fmt: skip
            return False
        log.info("automations loaded from %s: %s", self.path,
                 ", ".join(a.id for a in self.automations.automations) or "none")  # fmt: skip
        return True

    def _scenarios_stat(self) -> float | None:
        path = self.scenarios.path if self.scenarios is not None else None
        try:
            return os.stat(path).st_mtime if path is not None else None
        except OSError:
            return None

    def _reload_scenarios(self) -> bool:
        """Re-read the scenarios file if it changed (a broken one keeps the flows)."""
        mtime = self._scenarios_stat()
        if self.scenarios is None or mtime == self._scenarios_mtime:
            return False
        self._scenarios_mtime = mtime
        try:
            self.scenarios.reload()
        except DefinitionError as e:
            log.error("automations: the scenarios file is refused, its flows stay: %s", e)
            return False
        return True

    # --- intake ------------------------------------------------------------------------------
    async def paused(self) -> set[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(AutomationState.automation_id).where(AutomationState.paused))
            return {r[0] for r in rows}

    async def take_in(self) -> int:
        """Enter users from due schedule ticks and every new event (batch after batch, enters
        triggers included); the runs started."""
        if not self.automations.automations:
            return 0
        paused = await self.paused()
        now = self.clock()
        started = await take_schedules(self.sessions, self.automations, paused, now,
                                       self.options.default_tz)  # fmt: skip
        for auto in self.automations.of_kind("enters"):
            async with self.sessions() as session:
                await begin_write(session)
                try:
                    await set_up_enters(session, auto, now)
                except ReloveError as e:
                    log.error("automation %s: the enters filter fails: %s", auto.id, e)
                    await session.rollback()
                    continue
                except IntegrityError:  # another worker set it up at the same time
                    await session.rollback()
                    continue
                await session.commit()
        while True:
            async with self.sessions() as session:
                read, entered = await self.intake.run_once(
                    session, self.automations, paused, self.clock())
            started += entered
            if read < self.intake.batch:
                return started

    # --- running -----------------------------------------------------------------------------
    def claim_limit(self) -> int:
        """At most what can be sent well within a lease."""
        o = self.options
        return max(1, min(o.batch, int(o.rate * o.lease_seconds / 4)))

    async def claim(self, limit: int) -> list[ClaimedRun]:
        now = self.clock()
        paused = await self.paused()
        async with self.sessions() as session:
            await begin_write(session)
            pg = session.get_bind().dialect.name == "postgresql"
            due = (select(_R.c.id).where(
                _R.c.status.in_(ACTIVE), _R.c.due_at <= now,
                (_R.c.lease_until.is_(None)) | (_R.c.lease_until < now),
                _R.c.automation_id.not_in(sorted(paused)),
            ).order_by(_R.c.due_at).limit(limit))  # fmt: skip
            if pg:
                due = due.with_for_update(skip_locked=True)
            rows = (await session.execute(
                update(_R).where(_R.c.id.in_(due.scalar_subquery()))
                .values(owner=self.owner,
                        lease_until=now + timedelta(seconds=self.options.lease_seconds))
                .returning(_R.c.id, _R.c.automation_id, _R.c.user_id, _R.c.step, _R.c.status)
            )).all()  # fmt: skip
            await session.commit()
        return [ClaimedRun(*row) for row in rows]

    async def run_due(self) -> int:
        """Claim and run what is due now; the runs handled. Claims are topped up once half
        of them are done (no batch waits for its slowest run), never above the claim limit."""
        handled = 0
        limit = self.claim_limit()
        tasks: set[asyncio.Task[None]] = set()
        more = True
        try:
            while True:
                if more and len(tasks) <= limit // 2:
                    room = limit - len(tasks)
                    claimed = await self.claim(room)
                    more = len(claimed) == room
                    handled += len(claimed)
                    tasks.update(asyncio.create_task(self._run(run)) for run in claimed)
                if not tasks:
                    return handled
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a BaseException (the process is going down) goes on up
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, run: ClaimedRun) -> None:
        async with self._slots:
            try:
                await self.executor.process(
                    self.sessions, self.automations.get(run.automation_id), run)
            except Exception:
                log.exception("automation %s: run %s (user %s) failed at %s; retried after "
                              "the lease", run.automation_id, run.id, run.user_id, run.step)

    async def tick(self) -> int:
        """One round: reload, intake, due runs; the runs handled."""
        self.reload()
        await self.take_in()
        return await self.run_due()

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        log.info("automations worker %s: polling every %ss", self.owner,
                 self.options.poll_seconds)  # fmt: skip
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("automations worker: a round failed")
            try:
                await asyncio.wait_for(stop.wait(), self.options.poll_seconds)
            except TimeoutError:
                pass

