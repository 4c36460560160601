"""Schedule and enters triggers: users enter without an event of their own.

``{schedule: "0 10 * * *", filter: …}`` — at every tick of the cron expression (in
``RELOVE_DEFAULT_TZ``) the users matching the filter enter, ONE ``INSERT … SELECT``. The tick's
entries and the move of the trigger's ``last_tick`` commit together, so a worker that dies
before the commit takes the tick again and one that dies after it never does: a restart neither
loses nor repeats a tick. Ticks missed while no worker ran are taken one by one on the next
round (reentry decides whether the same people enter again); ticks passed while the automation
is paused enter no one. A new schedule (or a changed spec) starts from now: deploying it does
not fire past ticks.

``{enters: 'segment:"vip"'}`` — a user enters when they come to match the filter. Membership is
re-checked for the users of the events that can change it (``marker.changed`` and ``user.*``)
as the intake reads them: those who match now and were not members enter and become members,
members who no longer match stop being members (and may enter again later, as reentry allows).
The users matching when the trigger is first seen (or its filter changes) become members
without entering. A paused automation keeps its membership current; no one enters meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, tzinfo

from croniter import croniter
from sqlalchemy import and_, delete, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from relove.automations.definition import Automation, AutomationFile
from relove.automations.entry import among_ids, enter, enter_where
from relove.automations.models import AutomationMember, AutomationTrigger
from relove.db.models import User
from relove.db.uow import begin_write
from relove.errors import ReloveError
from relove.events.catalog import (
    MARKER_CHANGED,
    USER_BLOCKED,
    USER_CREATED,
    USER_DELETED,
    USER_GENDER_CHANGED,
    USER_UNBLOCKED,
)
from relove.segments.service import resolve_filter

log = logging.getLogger(__name__)

#: The events after which an enters trigger re-checks their user.
MEMBERSHIP_EVENTS = frozenset({MARKER_CHANGED, USER_CREATED, USER_BLOCKED, USER_UNBLOCKED,
                               USER_DELETED, USER_GENDER_CHANGED})  # fmt: skip
#: At most this many past ticks of one schedule are taken in per round.
MAX_TICKS_PER_ROUND = 100

_T = AutomationTrigger.__table__
_M = AutomationMember.__table__


def next_tick(schedule: str, after: datetime, tz: tzinfo) -> datetime:
    """The first tick of a cron expression strictly after ``after``, read in ``tz``."""
    nxt: datetime = croniter(schedule, after.astimezone(tz)).get_next(datetime)
    return nxt


def _pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _state(session: AsyncSession, auto: Automation, now: datetime,
                 ) -> AutomationTrigger | None:  # fmt: skip
    """The trigger's row, locked; None when it was (re)set up just now for this spec."""
    stmt = select(AutomationTrigger).where(AutomationTrigger.automation_id == auto.id)
    row = (await session.execute(stmt.with_for_update() if _pg(session) else stmt)).scalar()
    spec = auto.trigger.spec
    if row is not None and row.spec == spec:
        return row
    if row is None:
        session.add(AutomationTrigger(automation_id=auto.id, spec=spec, last_tick=now,
                                      updated_at=now))  # fmt: skip
    else:
        row.spec, row.last_tick, row.updated_at = spec, now, now
    await session.flush()
    return None


# --- schedule -------------------------------------------------------------------------------
async def take_schedule(session: AsyncSession, auto: Automation, paused: bool, now: datetime,
                        tz: tzinfo) -> int:  # fmt: skip
    """Take in the next due tick of a schedule trigger, if any, and commit: the users entered,
    or -1 when no tick is due."""
    assert auto.trigger.schedule is not None
    await begin_write(session)
    row = await _state(session, auto, now)
    if row is None:
        await session.commit()
        log.info("automation %s: schedule %s from now", auto.id, auto.trigger.schedule)
        return -1
    tick = next_tick(auto.trigger.schedule, row.last_tick or now, tz)
    if tick > now:
        await session.rollback()
        return -1
    entered: list[int] = []
    if not paused and auto.first:
        u = User.__table__
        among: ColumnElement[bool] = u.c.id.is_not(None)
        if auto.trigger.filter:
            among = await resolve_filter(session, auto.trigger.filter, now=now)
        entered = await enter_where(session, auto, among, now, props={"tick": tick.isoformat()})
    row.last_tick, row.updated_at = tick, now
    await session.commit()
    log.info("automation %s: tick %s, %s entered", auto.id, tick.isoformat(), len(entered))
    return len(entered)


async def take_schedules(sessions: Callable[[], AsyncSession], automations: AutomationFile,
                         paused: set[str], now: datetime, tz: tzinfo) -> int:  # fmt: skip
    """Every due tick of every schedule trigger, each in its own transaction."""
    total = 0
    for auto in automations.of_kind("schedule"):
        for _ in range(MAX_TICKS_PER_ROUND):
            async with sessions() as session:
                try:
                    n = await take_schedule(session, auto, auto.id in paused, now, tz)
                except ReloveError as e:  # e.g. its filter names a segment since deleted
                    log.error("automation %s: the schedule's filter fails: %s", auto.id, e)
                    break
                except IntegrityError:  # another worker set the trigger up at the same time
                    await session.rollback()
                    break
            if n < 0:
                break
            total += n
    return total


# --- enters ---------------------------------------------------------------------------------
async def _matching(session: AsyncSession, auto: Automation, now: datetime,
                    ids: Collection[int] | None) -> ColumnElement[bool]:  # fmt: skip
    assert auto.trigger.enters is not None
    where = await resolve_filter(session, auto.trigger.enters, now=now)
    if ids is None:
        return where
    return and_(among_ids(sorted(ids), _pg(session)), where)


async def set_up_enters(session: AsyncSession, auto: Automation, now: datetime) -> bool:
    """A new (or changed) enters trigger: who matches now becomes a member without entering.
    True when it was set up now. No commit."""
    if await _state(session, auto, now) is not None:
        return False
    u = User.__table__
    await session.execute(delete(_M).where(_M.c.automation_id == auto.id))
    where = await _matching(session, auto, now, None)
    await session.execute(insert(_M).from_select(
        ["automation_id", "user_id"], select(literal(auto.id), u.c.id).where(where)))
    log.info("automation %s: enters %s set up; those matching now do not enter", auto.id,
             auto.trigger.enters)  # fmt: skip
    return True


async def take_enters(session: AsyncSession, automations: AutomationFile, paused: set[str],
                      users: Mapping[int, int], now: datetime) -> int:  # fmt: skip
    """Re-check the users of membership events (user id → the event's id) against every
    enters trigger: enter those who came to match. In the caller's transaction."""
    total = 0
    if not users:
        return 0
    for auto in automations.of_kind("enters"):
        try:
            if await set_up_enters(session, auto, now):
                continue
            where = await _matching(session, auto, now, users)
        except ReloveError as e:
            log.error("automation %s: the enters filter fails: %s", auto.id, e)
            continue
        u = User.__table__
        match = {r[0] for r in await session.execute(select(u.c.id).where(where))}
        members = {r[0] for r in await session.execute(
            select(_M.c.user_id).where(_M.c.automation_id == auto.id,
                                       _M.c.user_id.in_(sorted(users))))}  # fmt: skip
        came, left = match - members, (members - match)
        if left:
            await session.execute(delete(_M).where(_M.c.automation_id == auto.id,
                                                   _M.c.user_id.in_(sorted(left))))  # fmt: skip
        if came:
            await session.execute(insert(_M), [{"automation_id": auto.id, "user_id": uid}
                                               for uid in sorted(came)])  # fmt: skip
            if auto.id not in paused and auto.first:
                total += await enter(session, auto, {uid: users[uid] for uid in came}, now)
    return total
