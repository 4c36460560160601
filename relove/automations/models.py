"""Tables of automations: ``automation_runs`` (one row per user in an automation), the intake's
durable cursor over ``events`` (``automation_cursors``), paused automations
(``automation_states``), the state of schedule and enters triggers (``automation_triggers``) and
who matches an enters trigger (``automation_members``).

A run's life: ``waiting`` (its next ``step`` is due at ``due_at``) → a worker claims it (a lease:
``owner`` + ``lease_until``) and runs steps until a ``wait`` (back to ``waiting`` with a later
``due_at``) or the end (``completed``); ``stopped`` when ``stop_when`` held, the user blocked the
bot, or the step it was at was removed. A ``send`` step commits ``sending`` BEFORE the Bot API
call and its outcome after; a run found ``sending`` with its lease expired (the worker died
mid-call) records the send as ``unknown`` and goes on with the next step — never sending twice.
At most one run per (automation, user) is active at a time (a partial unique index).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import UTCDateTime

_Id = BigInteger().with_variant(Integer(), "sqlite")
AUTOMATION_ID_LENGTH = 64
STEP_ID_LENGTH = 200
#: a trigger's spec as text (a filter is at most 10,000 characters: longer specs are hashed)
SPEC_LENGTH = 200


class RunStatus(enum.StrEnum):
    waiting = "waiting"
    sending = "sending"
    completed = "completed"
    stopped = "stopped"


ACTIVE = (RunStatus.waiting.value, RunStatus.sending.value)
_ACTIVE_SQL = "status IN ('waiting', 'sending')"


class AutomationRun(Base):
    __tablename__ = "automation_runs"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    automation_id: Mapped[str] = mapped_column(String(AUTOMATION_ID_LENGTH), nullable=False)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    #: the step to run next (while active) or the last one run (once ended)
    step: Mapped[str | None] = mapped_column(String(STEP_ID_LENGTH))
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(300))
    sent: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


_R = AutomationRun.__table__
Index("ix_automation_runs_due", _R.c.due_at, postgresql_where=text(_ACTIVE_SQL),
      sqlite_where=text(_ACTIVE_SQL))  # fmt: skip
Index("ix_automation_runs_automation_user", _R.c.automation_id, _R.c.user_id, _R.c.started_at)
Index("uq_automation_runs_active", _R.c.automation_id, _R.c.user_id, unique=True,
      postgresql_where=text(_ACTIVE_SQL), sqlite_where=text(_ACTIVE_SQL))  # fmt: skip
Index("ix_automation_runs_user", _R.c.user_id)


class AutomationCursor(Base):
    """How far the intake has read ``events`` (``last_id``)."""

    __tablename__ = "automation_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AutomationState(Base):
    """An automation an operator paused (``relove automations pause``)."""

    __tablename__ = "automation_states"

    automation_id: Mapped[str] = mapped_column(String(AUTOMATION_ID_LENGTH), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AutomationTrigger(Base):
    """The durable state of a schedule or enters trigger: its ``spec`` when it was set up (a
    changed spec starts afresh) and, for a schedule, the last tick taken in (``last_tick``):
    a tick's users enter in the transaction that moves ``last_tick``, so a restart neither
    loses nor repeats a tick."""

    __tablename__ = "automation_triggers"

    automation_id: Mapped[str] = mapped_column(String(AUTOMATION_ID_LENGTH), primary_key=True)
    spec: Mapped[str] = mapped_column(String(SPEC_LENGTH), nullable=False)
    last_tick: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AutomationMember(Base):
    """Who matches an ``enters`` trigger's filter as of its last check: a user enters when they
    come to match and are not a member yet; leaving the filter removes the row."""

    __tablename__ = "automation_members"

    automation_id: Mapped[str] = mapped_column(String(AUTOMATION_ID_LENGTH), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
