"""What operators ask of automations: status per automation, a user's runs, pause and resume."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from relove.automations.models import ACTIVE, AutomationRun, AutomationState
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.ops import metrics

_R = AutomationRun.__table__


@dataclass
class AutomationStatus:
    automation_id: str
    paused: bool = False
    entered: int = 0
    completed: int = 0
    stopped: int = 0
    sent: int = 0
    errors: int = 0
    #: active runs per step they are at (waiting or sending)
    at_step: dict[str, int] = field(default_factory=dict)
    stop_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"automation": self.automation_id, "paused": self.paused,
                "entered": self.entered, "active": sum(self.at_step.values()),
                "at_step": self.at_step, "completed": self.completed, "stopped": self.stopped,
                "stop_reasons": self.stop_reasons, "sent": self.sent,
                "errors": self.errors}  # fmt: skip


async def status(session: AsyncSession, automation_id: str) -> AutomationStatus:
    st = AutomationStatus(automation_id)
    st.paused = await is_paused(session, automation_id)
    rows = await session.execute(
        select(_R.c.status, _R.c.step, _R.c.reason, func.count(), func.sum(_R.c.sent),
               func.sum(_R.c.errors))
        .where(_R.c.automation_id == automation_id)
        .group_by(_R.c.status, _R.c.step, _R.c.reason))  # fmt: skip
    reasons: Counter[str] = Counter()
    for status_, step, reason, n, sent, errors in rows:
        st.entered += n
        st.sent += int(sent or 0)
        st.errors += int(errors or 0)
        if status_ in ("waiting", "sending"):
            st.at_step[str(step)] = st.at_step.get(str(step), 0) + n
        elif status_ == "completed":
            st.completed += n
        else:
            st.stopped += n
            reasons[str(reason)] += n
    st.stop_reasons = dict(reasons)
    return st


async def user_runs(session: AsyncSession, automation_id: str, user_id: int | None = None,
                    limit: int = 50) -> list[dict[str, Any]]:  # fmt: skip
    stmt = select(AutomationRun).where(AutomationRun.automation_id == automation_id)
    if user_id is not None:
        stmt = stmt.where(AutomationRun.user_id == user_id)
    rows = (await session.execute(stmt.order_by(AutomationRun.id.desc()).limit(limit))).scalars()
    return [{"id": r.id, "user_id": r.user_id, "status": r.status, "step": r.step,
             "due_at": r.due_at, "started_at": r.started_at, "ended_at": r.ended_at,
             "reason": r.reason, "sent": r.sent, "errors": r.errors} for r in rows]  # fmt: skip


async def is_paused(session: AsyncSession, automation_id: str) -> bool:
    return bool(await session.scalar(select(AutomationState.paused)
                                     .where(AutomationState.automation_id == automation_id)))


async def set_paused(session: AsyncSession, automation_id: str, paused: bool,
                     now: datetime | None = None) -> None:  # fmt: skip
    """Pause (no one enters, no run moves on) or resume; no commit."""
    await begin_write(session)
    row = await session.get(AutomationState, automation_id)
    if row is None:
        session.add(AutomationState(automation_id=automation_id, paused=paused,
                                    updated_at=now or utcnow()))  # fmt: skip
    else:
        row.paused, row.updated_at = paused, now or utcnow()


async def count_due_runs(engine: AsyncEngine, now: datetime | None = None) -> int:
    """Active runs due ``now`` that no worker holds (the ``relove_automation_runs_due`` gauge,
    read at scrape time; the partial index on ``due_at`` finds them)."""
    now = now or utcnow()
    async with engine.connect() as conn:
        due = await conn.scalar(select(func.count()).select_from(_R).where(
            _R.c.status.in_(ACTIVE), _R.c.due_at <= now,
            (_R.c.lease_until.is_(None)) | (_R.c.lease_until < now)))  # fmt: skip
    metrics.AUTOMATION_DUE.set(due or 0)
    return int(due or 0)
