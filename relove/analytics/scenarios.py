"""Per-step answer counts and drop-off of scenario flows, from the events the scenario engine
writes (docs/events.md): ``scenario.started`` (``flow``), ``scenario.answered`` (``flow``,
``step``), ``scenario.completed`` (``flow``) and ``scenario.cancelled`` (``flow``, ``step``).

One grouped query in SQL (never loading events into Python), on both databases: per event
name, flow and step, the number of events and of distinct users. :func:`flow_funnel` then
lays one flow's counts out in the order of its steps.

Drop-off of a step is the share of the previous row's users (``started`` for the first step)
who did not answer it. A conditional (``when``) or skippable step is not asked of everyone,
so its "drop-off" is partly by design; the console marks such steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.events.catalog import (
    SCENARIO_ANSWERED,
    SCENARIO_CANCELLED,
    SCENARIO_COMPLETED,
    SCENARIO_STARTED,
)
from relove.events.models import Event

E = Event.__table__
NAMES = (SCENARIO_STARTED, SCENARIO_ANSWERED, SCENARIO_COMPLETED, SCENARIO_CANCELLED)


@dataclass
class Tally:
    """Events and distinct users."""

    events: int = 0
    users: int = 0


@dataclass
class FlowCounts:
    flow: str
    started: Tally = field(default_factory=Tally)
    completed: Tally = field(default_factory=Tally)
    cancelled: Tally = field(default_factory=Tally)
    #: step id → answers
    answered: dict[str, Tally] = field(default_factory=dict)
    #: step id → cancellations at that step (``""``: cancelled where the step was unknown)
    cancelled_at: dict[str, Tally] = field(default_factory=dict)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


async def scenario_counts(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, FlowCounts]:
    """Counts per flow over ``[since, until)`` (open ends: all history)."""
    flow = E.c.props["flow"].as_string()
    step = E.c.props["step"].as_string()
    where: list[ColumnElement[bool]] = [E.c.name.in_(NAMES)]
    if since is not None:
        where.append(E.c.at >= since)
    if until is not None:
        where.append(E.c.at < until)
    query = (
        select(E.c.name, flow.label("flow"), step.label("step"), func.count().label("events"),
               func.count(E.c.user_id.distinct()).label("users"))
        .where(*where)
        .group_by(E.c.name, flow, step)
    )
    out: dict[str, FlowCounts] = {}
    for row in (await session.execute(query)).all():
        flow_id = _text(row.flow)
        counts = out.setdefault(flow_id, FlowCounts(flow_id))
        tally = Tally(int(row.events), int(row.users))
        step_id = _text(row.step)
        if row.name == SCENARIO_STARTED:
            _add(counts.started, tally)
        elif row.name == SCENARIO_COMPLETED:
            _add(counts.completed, tally)
        elif row.name == SCENARIO_ANSWERED:
            _add(counts.answered.setdefault(step_id, Tally()), tally)
        else:
            _add(counts.cancelled_at.setdefault(step_id, Tally()), tally)
    # a flow's cancellations over all steps, distinct users counted across steps
    cancelled = (
        select(flow.label("flow"), func.count().label("events"),
               func.count(E.c.user_id.distinct()).label("users"))
        .where(*where[1:], E.c.name == SCENARIO_CANCELLED)
        .group_by(flow)
    )
    for row in (await session.execute(cancelled)).all():
        flow_id = _text(row.flow)
        out.setdefault(flow_id, FlowCounts(flow_id)).cancelled = Tally(int(row.events),
                                                                         int(row.users))
    return out


def _add(into: Tally, more: Tally) -> None:
    # rows only repeat a key when a flow/step id is stored as a number and as text
    into.events += more.events
    into.users += more.users


@dataclass
class FunnelRow:
    """One row of a flow's funnel: a step (or ``started`` / ``completed``)."""

    key: str
    answers: int
    users: int
    cancelled: int = 0
    #: share of the flow's starters, 0..1 (None when nobody started)
    of_started: float | None = None
    #: users lost since the previous row, and their share of it
    lost: int = 0
    drop_off: float | None = None
    #: the step is asked only when its condition holds, or may be skipped
    optional: bool = False
    #: a step the events name but the file no longer has
    unknown: bool = False
    #: ``started``, ``step`` or ``completed``
    kind: str = "step"


def flow_funnel(counts: FlowCounts | None, steps: Sequence[tuple[str, bool]],
                flow: str = "") -> list[FunnelRow]:
    """Rows ``started``, each step (``(id, optional)`` in file order, then steps only the
    events know, by id) and ``completed``, with drop-off from row to row (distinct users)."""
    counts = counts or FlowCounts(flow)
    started = counts.started.users
    rows = [FunnelRow("started", counts.started.events, started,
                      of_started=1.0 if started else None, kind="started")]
    known = [s for s, _ in steps]
    extra = sorted(k for k in {*counts.answered, *counts.cancelled_at} if k and k not in known)
    for step_id, optional, unknown in [*((s, o, False) for s, o in steps),
                                       *((s, False, True) for s in extra)]:
        tally = counts.answered.get(step_id, Tally())
        cancel = counts.cancelled_at.get(step_id, Tally())
        rows.append(FunnelRow(step_id, tally.events, tally.users, cancelled=cancel.events,
                              optional=optional, unknown=unknown))
    rows.append(FunnelRow("completed", counts.completed.events, counts.completed.users,
                          kind="completed"))
    previous: int | None = None
    for row in rows:
        if started and row.kind != "started":
            row.of_started = row.users / started
        if previous is not None and not row.unknown:
            row.lost = max(previous - row.users, 0)
            row.drop_off = row.lost / previous if previous else None
        if not row.unknown:
            previous = row.users
    return rows
