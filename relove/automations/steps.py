"""Running one claimed run: its steps until a ``wait`` or the end, each step's effects once.

* ``set`` / ``unset`` / ``increment`` / ``tag`` / ``untag`` / ``emit`` / ``if``: the effect
  (atomic marker operations recorded as ``marker.changed`` with ``source=automation`` and the
  automation's id as actor, or the emitted event), ``automation.step`` and the run's move to the
  next step commit in ONE transaction: a crash before the commit leaves none of it, so the step
  runs again in full; after it, never again.
* ``send`` / ``notify_admins`` follow the broadcast sender's discipline: the run is committed
  ``sending`` BEFORE the Bot API call and the outcome after; a run found ``sending`` by a worker
  (the one that sent died) records ``unknown`` and goes on — the message is never sent twice.
  A 429 pauses every sender of the bot for ``retry_after`` and the same message is tried again;
  a 403 deactivates the user and stops all their runs.
* Every UPDATE of a run checks that this worker still holds it (``owner``) and that it is still
  active, so a run stopped meanwhile (the user blocked the bot) or taken over is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relove.automations.definition import TAGS_KEY, Automation, Step
from relove.automations.flows import Labels, flow_messages, snapshot_of
from relove.automations.localtime import next_local, quiet_until, user_zone
from relove.automations.models import ACTIVE, AutomationRun, RunStatus
from relove.broadcasts.base import Send
from relove.broadcasts.content import MessageTemplate, Recipient, TemplateRenderError
from relove.broadcasts.service import recipient_of
from relove.conversation.scenarios.engine import ScenarioEngine
from relove.conversation.scenarios.registry import ScenarioRegistry
from relove.db.models import User
from relove.db.uow import begin_write
from relove.events import EventSource, NewEvent, record_many
from relove.events.catalog import AUTOMATION_COMPLETED, AUTOMATION_STEP, AUTOMATION_STOPPED
from relove.ops import metrics
from relove.segments.service import resolve_filter
from relove.telegram.outcomes import Outcome, SendResult
from relove.telegram.ratelimit import BroadcastLane
from relove.users import service as markers
from relove.users.lifecycle import set_active

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_R = AutomationRun.__table__


class LeaseLost(Exception):
    """The run is no longer this worker's (stopped, or taken over after the lease lapsed)."""


@dataclass(slots=True)
class ClaimedRun:
    id: int
    automation_id: str
    user_id: int
    step: str | None
    status: str


@dataclass(slots=True)
class StepContext:
    """What running steps needs from the worker."""

    owner: str
    clock: Clock
    send: Send
    lane: BroadcastLane
    admin_ids: Sequence[int] = ()
    default_tz: tzinfo = UTC
    #: local hours without automation messages (start, end), e.g. (22, 9)
    quiet_hours: tuple[int, int] | None = None
    max_steps: int = 100
    max_attempts: int = 3
    backoff: float = 0.5
    #: the flows ``start_flow`` starts, and the labels of a question's done / skip buttons
    scenarios: ScenarioRegistry | None = None
    labels: Labels = str


async def condition_holds(session: AsyncSession, condition: str, user_id: int,
                          now: datetime) -> bool:  # fmt: skip
    """Whether a filter (segment language, saved segments inlined) holds for one user: one
    ``EXISTS`` with the compiler's bound values."""
    where = await resolve_filter(session, condition, now=now)
    u = User.__table__
    return bool(await session.scalar(select(exists().where(u.c.id == user_id, where))))


class RunExecutor:
    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

    # --- the run's row -----------------------------------------------------------------------
    async def _update(self, session: AsyncSession, run: ClaimedRun, **values: Any) -> None:
        result = await session.execute(
            update(_R).where(_R.c.id == run.id, _R.c.owner == self.ctx.owner,
                             _R.c.status.in_(ACTIVE))
            .values(updated_at=self.ctx.clock(), **values))  # fmt: skip
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(run.id)

    async def _events(self, session: AsyncSession, auto: Automation, run: ClaimedRun,
                      *events: tuple[str, dict[str, Any]]) -> None:  # fmt: skip
        await record_many(session, [
            NewEvent(run.user_id, name, {"automation": auto.id, **props}) for name, props in events
        ], source=EventSource.automation, actor=auto.id, check=False)
        for name, props in events:
            if name == AUTOMATION_STEP:
                metrics.AUTOMATION_STEPS.labels(auto.id, props["kind"]).inc()
            elif name == AUTOMATION_COMPLETED:
                metrics.AUTOMATION_COMPLETED.labels(auto.id).inc()

    async def _move(
        self, session: AsyncSession, auto: Automation, run: ClaimedRun, step: Step,
        nxt: str | None, *, props: dict[str, Any] | None = None, due: datetime | None = None,
        sent: int = 0, errors: int = 0,
    ) -> bool:
        """Record the step and move the run on (no commit); False once the run has ended."""
        counts = {"sent": _R.c.sent + sent, "errors": _R.c.errors + errors}
        step_event = (AUTOMATION_STEP, {"step": step.id, "kind": step.kind, **(props or {})})
        if nxt is None:
            await self._update(session, run, status=RunStatus.completed.value, step=step.id,
                               ended_at=self.ctx.clock(), owner=None, lease_until=None,
                               due_at=None, **counts)  # fmt: skip
            await self._events(session, auto, run, step_event, (AUTOMATION_COMPLETED, {}))
            return False
        if due is not None:
            await self._update(session, run, status=RunStatus.waiting.value, step=nxt,
                               due_at=due, owner=None, lease_until=None, **counts)  # fmt: skip
            await self._events(session, auto, run, step_event)
            return False
        await self._update(session, run, status=RunStatus.waiting.value, step=nxt, **counts)
        await self._events(session, auto, run, step_event)
        run.step, run.status = nxt, RunStatus.waiting.value
        return True

    async def stop(self, session: AsyncSession, auto: Automation | None, run: ClaimedRun,
                   reason: str) -> None:  # fmt: skip
        await self._update(session, run, status=RunStatus.stopped.value, reason=reason[:300],
                           ended_at=self.ctx.clock(), owner=None, lease_until=None)  # fmt: skip
        await record_many(session, [NewEvent(run.user_id, AUTOMATION_STOPPED, {
            "automation": run.automation_id, "step": run.step, "reason": reason[:300]})],
            source=EventSource.automation, actor=auto.id if auto else run.automation_id,
            check=False)  # fmt: skip
        metrics.AUTOMATION_STOPPED.labels(run.automation_id).inc()
        log.info("automation %s: user %s stopped at %s (%s)", run.automation_id, run.user_id,
                 run.step, reason)  # fmt: skip

    # --- running -----------------------------------------------------------------------------
    async def process(self, sessions: Callable[[], AsyncSession], auto: Automation | None,
                      run: ClaimedRun) -> None:  # fmt: skip
        try:
            await self._process(sessions, auto, run)
        except LeaseLost:
            log.info("automation %s: run %s is no longer ours", run.automation_id, run.id)

    async def _process(self, sessions: Callable[[], AsyncSession], auto: Automation | None,
                       run: ClaimedRun) -> None:  # fmt: skip
        if auto is None:
            async with sessions() as session:
                await begin_write(session)
                await self.stop(session, None, run, "automation removed")
                await session.commit()
            return
        # Consecutive instant steps share one transaction (their effects and the run's moves
        # commit together); a send commits ``sending`` before its call, and its outcome commits
        # with the steps after it (a crash in between leaves ``sending``: recorded ``unknown``).
        async with sessions() as session:
            await begin_write(session)
            if run.status == RunStatus.sending.value:
                # The worker that sent this step died before writing the outcome.
                step = auto.steps.get(run.step or "")
                if step is None:
                    await self.stop(session, auto, run, f"step {run.step!r} removed")
                    await session.commit()
                    return
                unknown = SendResult(Outcome.unknown, error="the worker stopped during the call")
                going = await self._after_send(session, auto, run, step, unknown)
                await session.commit()
                if not going:
                    return
                await begin_write(session)
            for _ in range(self.ctx.max_steps):
                step = auto.steps.get(run.step or "")
                if step is None:
                    await self.stop(session, auto, run, f"step {run.step!r} removed")
                    await session.commit()
                    return
                now = self.ctx.clock()
                if auto.stop_when and await condition_holds(session, auto.stop_when, run.user_id,
                                                            now):  # fmt: skip
                    await self.stop(session, auto, run, "stop_when")
                    await session.commit()
                    return
                if step.kind in ("send", "notify_admins", "start_flow"):
                    # commits ``sending`` before the call; the outcome commits with what follows
                    going = await self._send_step(session, auto, run, step)
                else:
                    going = await self._local_step(session, auto, run, step, now)
                if not going:
                    await session.commit()
                    return
            # A long chain of instant steps: give the others their turn, come back at once.
            await self._update(session, run, owner=None, lease_until=None)
            await session.commit()

    async def _local_step(self, session: AsyncSession, auto: Automation, run: ClaimedRun,
                          step: Step, now: datetime) -> bool:  # fmt: skip
        a, uid = step.args, run.user_id
        src, actor = EventSource.automation, auto.id
        if step.kind == "wait":
            if "until" in a:
                user = await session.get(User, uid)
                tz = user_zone(user.markers if user else None, self.ctx.default_tz)
                due = next_local(now, a["until"], tz)
            else:
                due = now + a["duration"]
            return await self._move(session, auto, run, step, step.next, due=due)
        if step.kind == "if":
            holds = await condition_holds(session, a["condition"], uid, now)
            return await self._move(session, auto, run, step,
                                    step.next if holds else step.orelse,
                                    props={"result": holds})  # fmt: skip
        if step.kind == "set":
            await markers.set_values(session, uid, a["values"], source=src, actor=actor)
        elif step.kind == "unset":
            await markers.unset(session, uid, a["names"], source=src, actor=actor)
        elif step.kind == "increment":
            for path, delta in a["values"].items():
                await markers.increment(session, uid, path, delta, source=src, actor=actor)
        elif step.kind == "tag":
            await markers.add_to_list(session, uid, TAGS_KEY, *a["names"], source=src, actor=actor)
        elif step.kind == "untag":
            await markers.remove_from_list(session, uid, TAGS_KEY, *a["names"], source=src,
                                           actor=actor)
        elif step.kind == "emit":
            await record_many(session, [NewEvent(uid, a["event"], a["props"])],
                              source=EventSource.automation, actor=auto.id)  # fmt: skip
        else:  # pragma: no cover - the definition refuses other kinds
            raise AssertionError(step.kind)
        return await self._move(session, auto, run, step, step.next)

    # --- sending -----------------------------------------------------------------------------
    async def _send_step(self, session: AsyncSession, auto: Automation, run: ClaimedRun,
                         step: Step) -> bool:  # fmt: skip
        user = await session.get(User, run.user_id)
        if user is None or not user.is_active:
            await self.stop(session, auto, run, "the user is not active")
            return False
        if step.kind in ("send", "start_flow"):
            tz = user_zone(user.markers, self.ctx.default_tz)
            later = quiet_until(self.ctx.clock(), self.ctx.quiet_hours, tz)
            if later is not None:  # quiet hours in the user's zone: the same step, later
                await self._update(session, run, due_at=later, owner=None, lease_until=None)
                return False
        recipient = recipient_of(user)
        if step.kind == "start_flow":
            return await self._start_flow(session, auto, run, step, user, recipient)
        template: MessageTemplate = step.args["template"]
        try:
            message = await template.arender(recipient)
        except TemplateRenderError as e:
            failed = SendResult(Outcome.failed, error=str(e))
            return await self._after_send(session, auto, run, step, failed)
        # ``sending`` is committed BEFORE the call: after a crash the step is never resent.
        await self._update(session, run, status=RunStatus.sending.value, step=step.id)
        await session.commit()
        if step.kind == "notify_admins":
            results = [await self._deliver(Recipient(id=a), message) for a in self.ctx.admin_ids]
            sent = [r for r in results if r.outcome is Outcome.sent]
            result = sent[0] if sent else (results[0] if results else SendResult(
                Outcome.failed, error="no admins (RELOVE_ADMIN_IDS)"))
        else:
            result = await self._deliver(recipient, message)
        await begin_write(session)
        return await self._after_send(session, auto, run, step, result)

    async def _start_flow(self, session: AsyncSession, auto: Automation, run: ClaimedRun,
                          step: Step, user: User, recipient: Recipient) -> bool:  # fmt: skip
        """Start the flow as /start does and send its first question: the flow state and
        ``sending`` commit together before the call."""
        registry = self.ctx.scenarios
        flow = registry.flow(step.args["flow"]) if registry is not None else None
        if registry is None or flow is None:
            failed = SendResult(Outcome.failed, error=f"no scenario {step.args['flow']!r}")
            return await self._after_send(session, auto, run, step, failed)
        outcome = await ScenarioEngine(registry).begin(session, snapshot_of(user), flow)
        messages = [] if outcome is None else flow_messages(outcome, self.ctx.labels)
        if not messages:  # its when / repeat rule said no, or nothing to say
            return await self._move(session, auto, run, step, step.next, props={
                "flow": flow.id, "outcome": "not started" if outcome is None else "finished"})
        await self._update(session, run, status=RunStatus.sending.value, step=step.id)
        await session.commit()
        result = SendResult(Outcome.failed, error="nothing sent")
        for message in messages:
            result = await self._deliver(recipient, message)
            if result.outcome is not Outcome.sent:
                break
        await begin_write(session)
        return await self._after_send(session, auto, run, step, result)

    async def _deliver(self, recipient: Recipient, message: Any) -> SendResult:
        lane, limiter = self.ctx.lane, self.ctx.lane.parent
        transient = throttled = 0
        while True:
            await lane.acquire()
            await limiter.acquire_chat(recipient.id)
            await limiter.wait_pause()
            result = await self.ctx.send(recipient, message)
            if result.outcome is Outcome.retry_after and throttled < 10:
                throttled += 1
                await lane.pause(result.retry_after or 1.0)
                continue
            if result.outcome is Outcome.transient and transient + 1 < self.ctx.max_attempts:
                transient += 1
                await asyncio.sleep(self.ctx.backoff * 2 ** (transient - 1))
                continue
            return result

    async def _after_send(self, session: AsyncSession, auto: Automation, run: ClaimedRun,
                          step: Step, result: SendResult) -> bool:  # fmt: skip
        """Write a send's outcome and move on (no commit); False once the run has ended."""
        props: dict[str, Any] = {"outcome": result.outcome.value}
        if result.message_id is not None:
            props["message_id"] = result.message_id
        if result.error:
            props["error"] = result.error[:300]
        if result.outcome is Outcome.blocked and step.kind in ("send", "start_flow"):
            await self._events(session, auto, run, (AUTOMATION_STEP, {
                "step": step.id, "kind": step.kind, **props}))
            await self._update(session, run, errors=_R.c.errors + 1)
            await set_active(session, run.user_id, False, source=EventSource.automation,
                             actor=auto.id)  # fmt: skip
            await self.stop(session, auto, run, "blocked")
            await stop_user_runs(session, run.user_id, "blocked", self.ctx.clock())
            return False
        ok = result.outcome is Outcome.sent
        user_send = step.kind in ("send", "start_flow")
        return await self._move(session, auto, run, step, step.next, props=props,
                                sent=int(ok and user_send), errors=int(not ok))  # fmt: skip


async def stop_user_runs(session: AsyncSession, user_id: int, reason: str,
                         now: datetime) -> list[tuple[str, str | None]]:  # fmt: skip
    """Stop every active run of a user (they blocked the bot); no commit."""
    rows = (await session.execute(
        update(_R).where(_R.c.user_id == user_id, _R.c.status.in_(ACTIVE))
        .values(status=RunStatus.stopped.value, reason=reason, ended_at=now, updated_at=now,
                owner=None, lease_until=None)
        .returning(_R.c.automation_id, _R.c.step))).all()  # fmt: skip
    if rows:
        await record_many(session, [NewEvent(user_id, AUTOMATION_STOPPED, {
            "automation": a, "step": s, "reason": reason}, actor=a) for a, s in rows],
            source=EventSource.automation, check=False)  # fmt: skip
        for automation_id, _ in rows:
            metrics.AUTOMATION_STOPPED.labels(automation_id).inc()
    return [(a, s) for a, s in rows]
