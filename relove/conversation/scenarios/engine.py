"""Runs scenario flows for one user: which question is next, checking and storing answers.

State lives in the user's ``context.scenario`` (``{flow, step, selected}``), so a flow survives
restarts and works across bot processes; completed flows are remembered in
``context.scenarios_done.<flow>``. Answers go to ``markers`` through the atomic marker service.
The engine knows nothing about Telegram: it returns :class:`Question` / :class:`Finished`
values that handlers render.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from relove.conversation.reads import read_documents, user_dict
from relove.conversation.scenarios.model import Flow, Step
from relove.conversation.scenarios.registry import ScenarioRegistry
from relove.db.models import Gender, UserSnapshot
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.events import EventSource, record
from relove.events.catalog import (
    SCENARIO_ANSWERED,
    SCENARIO_CANCELLED,
    SCENARIO_COMPLETED,
    SCENARIO_STARTED,
)
from relove.users.lifecycle import set_gender
from relove.users.service import (
    Executor,
    add_to_list,
    get_user_documents,
    remove_from_list,
    set_values,
    set_values_if,
    unset,
)

log = logging.getLogger(__name__)


@dataclass
class Question:
    flow: Flow
    step: Step
    intro: str | None = None
    selected: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass
class Finished:
    flow: Flow


Outcome = Question | Finished


class AnswerRejected(Exception):
    """The typed answer does not pass the step's validation (``str(e)`` says why)."""

    def __init__(self, question: Question, reason: str) -> None:
        super().__init__(reason)
        self.question = question
        self.reason = reason


def _norm(text: str) -> str:
    """Casefolded letters, digits and single spaces (labels often carry emoji)."""
    kept = "".join(ch if ch.isalnum() else " " for ch in text.casefold())
    return " ".join(kept.split())


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``True`` is not ``1``, as in the database's list operations)."""
    return type(a) is type(b) and a == b


def check_text(step: Step, raw: str) -> Any:
    """The value a typed answer stores, or ``ValueError`` with a reason for the person."""
    text = " ".join(raw.split())
    if step.type != "text":
        typed = _norm(text)
        for option in step.options:
            if typed and typed in (_norm(option.label), _norm(str(option.value))):
                return option.value
        raise ValueError("choose")
    v = step.validate_
    if len(text) < max(v.min_length, 1):
        raise ValueError("too_short")
    if len(text) > v.max_length:
        raise ValueError("too_long")
    if v.pattern and not re.fullmatch(v.pattern, text):
        raise ValueError("pattern")
    if v.number:
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            raise ValueError("number") from None
        if (v.min is not None and number < v.min) or (v.max is not None and number > v.max):
            raise ValueError("range")
        return int(number) if number.is_integer() else number
    return text


class ScenarioEngine:
    def __init__(self, registry: ScenarioRegistry) -> None:
        self.registry = registry

    # -- state ---------------------------------------------------------------------------------
    def state(self, context: dict[str, Any]) -> tuple[Flow, Step, list[Any]] | None:
        """The flow and step a user is on, from their context (``None`` if none or stale)."""
        sc = context.get("scenario")
        if not isinstance(sc, dict):
            return None
        flow = self.registry.flow(str(sc.get("flow")))
        step = flow.step(str(sc.get("step"))) if flow else None
        if flow is None or step is None:
            return None
        selected = sc.get("selected")
        return flow, step, list(selected) if isinstance(selected, list) else []

    async def current(self, executor: Executor, user: UserSnapshot) -> Question | None:
        docs = await read_documents(executor, user.id)
        st = self.state(docs["context"])
        return Question(st[0], st[1], selected=st[2]) if st else None

    # -- starting ------------------------------------------------------------------------------
    def may_start(self, flow: Flow, user_dict: dict[str, Any], *, explicit: bool) -> bool:
        done = (user_dict.get("context") or {}).get("scenarios_done") or {}
        if not explicit and not flow.repeat and isinstance(done, dict) and flow.id in done:
            return False
        return flow.when is None or flow.when.matches(user_dict)

    async def begin(
        self, executor: Executor, user: UserSnapshot, flow: Flow, *, explicit: bool = False
    ) -> Outcome | None:
        """Start ``flow`` (``None`` if its condition or ``repeat`` rule says no)."""
        await begin_write(executor)
        data = await user_dict(executor, user)
        if not self.may_start(flow, data, explicit=explicit):
            return None
        log.info("user %s starts scenario %s", user.id, flow.id)
        await record(executor, user.id, SCENARIO_STARTED, {"flow": flow.id}, source=EventSource.bot)
        outcome = await self._advance(executor, user, flow, -1, data)
        if isinstance(outcome, Question):
            outcome.intro = flow.intro
        return outcome

    async def start_for(
        self, executor: Executor, user: UserSnapshot, *, command: str | None, payload: str | None
    ) -> Outcome | None:
        """The first flow a command (or ``/start [payload]``) may begin for this user."""
        if command == "start":
            candidates = self.registry.for_start(payload)
            explicit = False
        else:
            flow = self.registry.for_command(command or "")
            candidates, explicit = ([flow] if flow else []), True
        for flow in candidates:
            outcome = await self.begin(executor, user, flow, explicit=explicit)
            if outcome is not None:
                return outcome
        return None

    # -- answering -----------------------------------------------------------------------------
    async def answer_text(self, executor: Executor, user: UserSnapshot, raw: str) -> Outcome | None:
        """A typed answer to the current question; ``None`` when the user is in no flow.
        Raises :class:`AnswerRejected` when it does not validate (nothing is stored)."""
        await begin_write(executor)  # reads the flow state, then writes it
        docs = await read_documents(executor, user.id)
        st = self.state(docs["context"])
        if st is None:
            return None
        flow, step, selected = st
        try:
            value = check_text(step, raw)
        except ValueError as e:
            raise AnswerRejected(Question(flow, step, selected=selected), str(e)) from None
        if step.type == "multi":
            value = [value]
        return await self._store_and_advance(executor, user, flow, step, value)

    async def choose(
        self, executor: Executor, user: UserSnapshot, flow_id: str, step_id: str, index: int
    ) -> Outcome | None:
        """A button press on the current question; ``None`` for a stale button."""
        await begin_write(executor)  # reads the flow state, then writes it
        docs = await read_documents(executor, user.id)
        st = self.state(docs["context"])
        if st is None or st[0].id != flow_id or st[1].id != step_id:
            return None
        flow, step, selected = st
        if not 0 <= index < len(step.options):
            return None
        value = step.options[index].value
        if step.type == "choice":
            return await self._store_and_advance(executor, user, flow, step, value)
        toggled = await self._toggle(executor, user.id, flow, step, value)
        if toggled is None:
            return None  # the flow moved on meanwhile (another tap, a typed answer)
        return Question(flow, step, selected=toggled)

    async def _toggle(
        self, executor: Executor, user_id: int, flow: Flow, step: Step, value: Any
    ) -> list[Any] | None:
        """Toggle ``value`` in ``context.scenario.selected`` without losing a concurrent tap.

        The claim comes first, so the "is it selected?" decision and the list update below see
        every committed tap. The list itself changes with the atomic add/remove operations,
        never by writing back a list computed in Python. ``None`` when the user is no longer on
        this question."""
        context = await self._claim(executor, user_id, flow, step)
        if context is None:
            return None
        current = (context.get("scenario") or {}).get("selected")
        if isinstance(current, list) and any(_same(v, value) for v in current):
            return await remove_from_list(
                executor, user_id, "scenario.selected", value, doc="context"
            )
        return await add_to_list(executor, user_id, "scenario.selected", value, doc="context")

    async def confirm(
        self, executor: Executor, user: UserSnapshot, flow_id: str, step_id: str
    ) -> Outcome | None:
        """"Done" on a multi-choice question (nothing selected: asks again)."""
        await begin_write(executor)  # reads the flow state, then writes it
        docs = await read_documents(executor, user.id)
        st = self.state(docs["context"])
        if st is None or st[0].id != flow_id or st[1].id != step_id:
            return None
        flow, step, _ = st
        context = await self._claim(executor, user.id, flow, step)
        if context is None:
            return None
        selected = (context.get("scenario") or {}).get("selected")
        if not isinstance(selected, list) or not selected:
            return Question(flow, step, error="choose")
        order = [o.value for o in step.options]
        value = sorted(selected, key=lambda v: order.index(v) if v in order else len(order))
        return await self._store_and_advance(executor, user, flow, step, value, claimed=True)

    async def skip(
        self, executor: Executor, user: UserSnapshot, flow_id: str, step_id: str
    ) -> Outcome | None:
        await begin_write(executor)  # reads the flow state, then writes it
        docs = await read_documents(executor, user.id)
        st = self.state(docs["context"])
        if st is None or st[0].id != flow_id or st[1].id != step_id or not st[1].skippable:
            return None
        flow, step, _ = st
        if await self._claim(executor, user.id, flow, step) is None:
            return None
        data = await self._locked_user_dict(executor, user)
        return await self._advance(executor, user, flow, flow.index(step.id), data)

    async def cancel(self, executor: Executor, user: UserSnapshot) -> bool:
        await begin_write(executor)  # reads the flow state, then writes it
        docs = await read_documents(executor, user.id)
        st = self.state(docs["context"])
        if st is None and "scenario" not in docs["context"]:
            return False
        await unset(executor, user.id, ["scenario"], doc="context")
        props = {"flow": st[0].id, "step": st[1].id} if st else {}
        await record(executor, user.id, SCENARIO_CANCELLED, props, source=EventSource.bot)
        return True

    # -- internals -----------------------------------------------------------------------------
    async def _claim(
        self, executor: Executor, user_id: int, flow: Flow, step: Step
    ) -> dict[str, Any] | None:
        """Lock the user's row for answering ``step``: a compare-and-set on the current flow and
        step, which writes (the row lock on PostgreSQL, the write lock on SQLite) and returns
        the context as of that lock — or ``None`` when the user has moved on meanwhile (a
        concurrent tap or answer got there first). Everything after it in the transaction sees
        every committed change and no concurrent answer can interleave."""
        here = {"scenario.flow": flow.id, "scenario.step": step.id}
        return await set_values_if(executor, user_id, here, expect=here, doc="context")

    @staticmethod
    async def _locked_user_dict(executor: Executor, user: UserSnapshot) -> dict[str, Any]:
        """``user.to_dict()`` with fresh documents, read inside the claimed (writing)
        transaction — no commit, so the lock is kept until the flow state is written."""
        data = user.to_dict()
        data.update(await get_user_documents(executor, user.id))
        return data

    async def _store_and_advance(
        self,
        executor: Executor,
        user: UserSnapshot,
        flow: Flow,
        step: Step,
        value: Any,
        *,
        claimed: bool = False,
    ) -> Outcome | None:
        if not claimed and await self._claim(executor, user.id, flow, step) is None:
            return None
        await store_answer(executor, user.id, step.marker, value)
        answered = {"flow": flow.id, "step": step.id, "marker": step.marker,
                    "value": _short(value)}  # fmt: skip
        await record(executor, user.id, SCENARIO_ANSWERED, answered, source=EventSource.bot)
        data = await self._locked_user_dict(executor, user)
        if step.marker == "gender" and isinstance(value, str) and value in Gender.__members__:
            data["gender"] = value
        return await self._advance(executor, user, flow, flow.index(step.id), data)

    async def _advance(
        self, executor: Executor, user: UserSnapshot, flow: Flow, after: int, data: dict[str, Any]
    ) -> Outcome:
        for step in flow.steps[after + 1 :]:
            if step.when is None or step.when.matches(data):
                await set_values(
                    executor,
                    user.id,
                    {"scenario": {"flow": flow.id, "step": step.id, "selected": []}},
                    doc="context",
                )
                return Question(flow, step)
        await unset(executor, user.id, ["scenario"], doc="context")
        await set_values(
            executor, user.id, {f"scenarios_done.{flow.id}": utcnow().isoformat()}, doc="context"
        )
        await record(executor, user.id, SCENARIO_COMPLETED, {"flow": flow.id},
                     source=EventSource.bot)  # fmt: skip
        log.info("user %s finished scenario %s", user.id, flow.id)
        return Finished(flow)


async def store_answer(executor: Executor, user_id: int, marker: str, value: Any) -> None:
    """Write one answer. The marker ``gender`` (male/female/unknown) also sets the gender
    column, with ``markers.gender_source = "scenario"`` so inference never overrides it."""
    if marker == "gender" and isinstance(value, str) and value in Gender.__members__:
        await set_gender(executor, user_id, value, source=EventSource.bot)
        await set_values(executor, user_id, {"gender_source": "scenario"}, source=EventSource.bot)
        return
    await set_values(executor, user_id, {marker: value}, source=EventSource.bot)


def _short(value: Any, limit: int = 1000) -> Any:
    """An answer as event props keep it (long text clipped)."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value
