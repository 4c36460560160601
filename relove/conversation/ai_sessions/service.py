"""Runs AI sessions: start a mode, answer each message in it, end it with a validated result.

Database work happens in short transactions of its own (never across a model call). A message
first takes the session's lease (:func:`store.claim`), so messages of one session are answered
in order, one at a time, across processes; a second message waits for the first. The end asks
the model for the result with the provider's structured output, validates it, retries once
quoting the error, and only a valid result is written — through the marker service, with
``source=llm`` and the session as the actor — else nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.conversation.ai_sessions import store
from relove.conversation.ai_sessions.extract import extract
from relove.conversation.ai_sessions.models import SessionStatus
from relove.conversation.ai_sessions.modes import NOW, RECOMMENDATIONS, AIMode
from relove.conversation.base import BaseLLMProvider, ChatMessage, LLMError
from relove.conversation.budget import BaseLLMBudget, BudgetExceeded
from relove.conversation.catalog import CatalogItem, CatalogRegistry, rank
from relove.conversation.prompt import profile_block
from relove.conversation.reads import user_dict
from relove.conversation.scenarios.registry import ScenarioRegistry
from relove.db.models import UserSnapshot
from relove.db.types import utcnow
from relove.db.uow import begin_write
from relove.events import EventSource, record
from relove.events.catalog import RECOMMENDATION_SHOWN
from relove.templating import Template
from relove.users.service import set_values

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


class Kind(enum.StrEnum):
    started = "started"
    answer = "answer"
    finished = "finished"  #: a valid result was written
    failed = "failed"  #: the result did not validate twice; nothing written
    ended = "ended"  #: a mode without a result ended
    needs_model = "needs_model"
    fallback = "fallback"
    rate = "rate"
    daily = "daily"
    busy = "busy"
    expired = "expired"  #: the session had been idle too long and was abandoned


@dataclass
class Outcome:
    kind: Kind
    mode: AIMode | None = None
    session_id: int | None = None
    text: str | None = None  #: the model's Markdown (answer, generated greeting)
    reply_html: str | None = None  #: the mode's rendered reply (finished)
    result: dict[str, Any] | None = None
    recommendations: list[tuple[CatalogItem, str]] = field(default_factory=list)
    then: Outcome | None = None  #: what followed the answer (the session ended)


@dataclass(frozen=True)
class AIConfig:
    timeout: float = 30.0
    max_tokens: int | None = 800
    result_max_tokens: int = 1200
    temperature: float | None = None
    history: int = 60  #: messages of the session sent to the model

    @property
    def lease_seconds(self) -> float:
        # an answer, or a result with its repair retry, plus slack
        return self.timeout * 3 + 15


def _system(mode: AIMode, default_persona: str, turn_count: int) -> str:
    persona = mode.persona or default_persona
    return (
        f"{persona}\n\nЦель этого разговора: {mode.goal}\n"
        f"Сейчас обмен {turn_count} из {mode.max_turns}. Задавай по одному вопросу за раз."
    )


class AISessionService:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        registry: ScenarioRegistry,
        catalog: CatalogRegistry,
        provider: BaseLLMProvider | None,
        budget: BaseLLMBudget | None,
        default_persona: str,
        config: AIConfig | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.registry = registry
        self.catalog = catalog
        self.provider = provider
        self.budget = budget
        self.default_persona = default_persona
        self.config = config or AIConfig()

    # -- starting -------------------------------------------------------------------------------
    async def start(self, user: UserSnapshot, mode: AIMode) -> Outcome:
        if self.provider is None:
            return Outcome(Kind.needs_model, mode)
        async with self._writing() as s:
            session_id, previous = await store.open_session(s, user.id, mode.id)
            if mode.greeting:
                row = await store.get(s, session_id)
                assert row is not None
                await store.add_turn(s, row, "assistant", mode.greeting)
            await s.commit()
        if previous is not None:
            log.info("user %s: AI session %s (%s) left for %s", user.id, previous.id,
                     previous.mode, mode.id)  # fmt: skip
        log.info("user %s starts AI session %s (%s)", user.id, session_id, mode.id)
        if mode.greeting:
            return Outcome(Kind.started, mode, session_id, text=mode.greeting)
        return await self._generated_greeting(user, mode, session_id)

    async def _generated_greeting(self, user: UserSnapshot, mode: AIMode, sid: int) -> Outcome:
        lease = await self._wait_for_lease(sid)
        if lease is None:
            return Outcome(Kind.busy, mode, sid)
        try:
            async with self._writing() as s:
                data = await user_dict(s, user)
            messages = [
                ChatMessage("system", _system(mode, self.default_persona, 0)),
                ChatMessage("system", profile_block(data)),
                ChatMessage(
                    "user",
                    "(Человек только что начал этот разговор. Поприветствуй "
                    "его и задай первый вопрос.)",
                ),  # fmt: skip
            ]
            text = await self._call(user.id, messages)
            if isinstance(text, Kind):
                return Outcome(text, mode, sid)
            async with self._writing() as s:
                row = await store.get(s, sid)
                assert row is not None
                await store.add_turn(s, row, "assistant", text)
                await s.commit()
            return Outcome(Kind.started, mode, sid, text=text)
        finally:
            await self._release(sid, lease)

    # -- the current session ------------------------------------------------------------------
    async def current(self, user_id: int) -> tuple[store.SessionRow, AIMode] | Outcome | None:
        """The user's active session and its mode; an idle one is abandoned here
        (:attr:`Kind.expired`); a session whose mode was removed from the file is abandoned."""
        async with self._writing() as s:
            row = await store.active(s, user_id)
            if row is None:
                return None
            mode = self.registry.mode(row.mode)
            if mode is None:
                await store.close(s, row, SessionStatus.abandoned, "mode_removed")
                await s.commit()
                return None
            if row.last_activity_at + timedelta(seconds=mode.end.idle) < utcnow():
                closed = await store.close(s, row, SessionStatus.abandoned, "idle")
                await s.commit()
                return Outcome(Kind.expired, mode, row.id) if closed else None
        return row, mode

    async def stop(self, user_id: int, reason: str = "stopped") -> AIMode | None:
        """Leave the active session without a result (``/stop``, ``/cancel``)."""
        async with self._writing() as s:
            row = await store.active(s, user_id)
            if row is None:
                return None
            closed = await store.close(s, row, SessionStatus.abandoned, reason)
            await s.commit()
        return self.registry.mode(row.mode) if closed else None

    # -- a message in the session ------------------------------------------------------------
    async def message(self, user: UserSnapshot, text: str) -> Outcome | None:
        """Answer a message in the active session (``None``: the user has none)."""
        found = await self.current(user.id)
        if not isinstance(found, tuple):
            return found
        row, mode = found
        if self.provider is None:
            return Outcome(Kind.needs_model, mode, row.id)
        if self.budget is not None:
            refusal = await self.budget.refusal(user.id)
            if refusal is not None:
                return Outcome(Kind(refusal.value), mode, row.id)
        lease = await self._wait_for_lease(row.id)
        if lease is None:
            return Outcome(Kind.busy, mode, row.id)
        try:
            async with self._writing() as s:
                fresh = await store.get(s, row.id)
                if fresh is None or fresh.status != "active":
                    return None
                count = await store.add_turn(s, fresh, "user", text)
                history = await store.turns(s, row.id)
                data = await user_dict(s, user)
                await s.commit()
            messages = [
                ChatMessage("system", _system(mode, self.default_persona, count)),
                ChatMessage("system", profile_block(data)),
            ] + [ChatMessage("user" if r == "user" else "assistant", t)
                 for r, t in history[-self.config.history:]]  # fmt: skip
            if count >= mode.max_turns:
                # the last exchange: the result is the answer
                counted = dataclasses.replace(fresh, turn_count=count)
                return await self._finish(user, mode, counted, lease, "max_turns")
            answer = await self._call(user.id, messages)
            if isinstance(answer, Kind):
                return Outcome(answer, mode, row.id)
            async with self._writing() as s:
                await store.add_turn(s, fresh, "assistant", answer)
                await s.commit()
            return Outcome(Kind.answer, mode, row.id, text=answer)
        finally:
            await self._release(row.id, lease)

    async def end(self, user: UserSnapshot, reason: str = "requested") -> Outcome | None:
        """End the active session now and produce its result (end command, end button)."""
        found = await self.current(user.id)
        if not isinstance(found, tuple):
            return found
        row, mode = found
        if self.provider is None:
            return Outcome(Kind.needs_model, mode, row.id)
        lease = await self._wait_for_lease(row.id)
        if lease is None:
            return Outcome(Kind.busy, mode, row.id)
        try:
            async with self._writing() as s:
                fresh = await store.get(s, row.id)
            if fresh is None or fresh.status != "active":
                return None
            return await self._finish(user, mode, fresh, lease, reason)
        finally:
            await self._release(row.id, lease)

    # -- the result ---------------------------------------------------------------------------
    async def _finish(
        self, user: UserSnapshot, mode: AIMode, row: store.SessionRow, lease: Any, reason: str
    ) -> Outcome:
        if not mode.has_result:
            async with self._writing() as s:
                await store.close(s, row, SessionStatus.completed, reason, lease=lease)
                await s.commit()
            return Outcome(Kind.ended, mode, row.id)
        async with self._writing() as s:
            history = await store.turns(s, row.id)
            data = await user_dict(s, user)
        recommending = mode.recommend is not None and row.turn_count >= mode.recommend.after_turns
        offered = self._offered(data) if recommending else []
        refusal: list[Kind] = []

        async def ask(messages: list[ChatMessage], schema: dict[str, Any]) -> str | None:
            answer = await self._call(user.id, messages, schema=schema, name=mode.id)
            if isinstance(answer, Kind):
                refusal.append(answer)
                return None
            return answer

        got = await extract(ask, mode, history, offered, recommending=recommending)
        for error in got.errors:
            log.warning("AI session %s: invalid result: %s", row.id, error)
        if got.dropped:
            log.info("AI session %s: %s recommended ids not in the catalog dropped",
                     row.id, got.dropped)  # fmt: skip
        if got.no_answer and got.result is None:
            # no answer from the model (failure, budget): the session stays; /end again later
            return Outcome(refusal[-1] if refusal else Kind.fallback, mode, row.id)
        result = got.result
        if result is None:
            async with self._writing() as s:
                await store.close(s, row, SessionStatus.failed, "invalid_result", lease=lease)
                await s.commit()
            return Outcome(Kind.failed, mode, row.id)
        picks = await self._write(user, mode, row, lease, result, reason)
        if picks is None:
            return Outcome(Kind.busy, mode, row.id)  # ended elsewhere meanwhile
        reply = None
        if mode.reply:
            names = {"result": sorted(result), "user": [], "mode": []}
            template = Template(mode.reply, names=names, check_names=False)
            variables = {"result": result, "user": {"first_name": user.first_name},
                         "mode": {"id": mode.id, "title": mode.title}}  # fmt: skip
            reply = await template.arender(variables)
        return Outcome(Kind.finished, mode, row.id, reply_html=reply, result=result,
                       recommendations=picks)  # fmt: skip

    def _offered(self, data: dict[str, Any]) -> list[CatalogItem]:
        return rank(self.catalog.current, {**data, "context": {}}, k=30)

    async def _write(
        self, user: UserSnapshot, mode: AIMode, row: store.SessionRow, lease: Any,
        result: dict[str, Any], reason: str,
    ) -> list[tuple[CatalogItem, str]] | None:  # fmt: skip
        """Write the result where the mode says and end the session, in one transaction."""
        now = utcnow().isoformat(timespec="seconds")

        def value(name: str) -> Any:
            return now if name == NOW else result.get(name)

        markers: dict[str, Any] = {}
        context: dict[str, Any] = {}
        for target, source in mode.write.items():
            doc, _, path = target.partition(".")
            v = (
                value(source)
                if isinstance(source, str)
                else {k: value(n) for k, n in source.items() if value(n) is not None}
            )
            if v is None:
                continue
            (markers if doc == "markers" else context)[path] = v
        picks = [(item, r["reason"]) for r in result.get(RECOMMENDATIONS, [])
                 if (item := self.catalog.current.get(r["id"])) is not None]  # fmt: skip
        who = store.actor(row.id)
        async with self._writing() as s:
            if not await store.close(s, row, SessionStatus.completed, reason, result=result,
                                     lease=lease):  # fmt: skip
                await s.rollback()
                return None
            if markers:
                await set_values(s, user.id, markers, source=EventSource.llm, actor=who)
            if context:
                await set_values(s, user.id, context, doc="context", source=EventSource.llm,
                                 actor=who)  # fmt: skip
            if picks:
                await record(s, user.id, RECOMMENDATION_SHOWN,
                             {"items": [i.id for i, _ in picks], "session": row.id},
                             source=EventSource.llm, actor=who)  # fmt: skip
            await s.commit()
        log.info("user %s: AI session %s (%s) completed", user.id, row.id, mode.id)
        return picks

    # -- plumbing -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A session of its own that may read, then write (``begin_write``: on SQLite a read
        snapshot could not be upgraded once another connection committed)."""
        async with self.session_factory() as s:
            await begin_write(s)
            yield s

    async def _wait_for_lease(self, session_id: int) -> Any:
        """The session's lease, waiting while another message holds it (``None``: still held
        past the lease's own length, or the session ended)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.lease_seconds + 5
        while True:
            async with self._writing() as s:
                lease = await store.claim(s, session_id, self.config.lease_seconds)
                await s.commit()
            if lease is not None:
                return lease
            async with self._writing() as s:
                row = await store.get(s, session_id)
            if row is None or row.status != "active" or loop.time() > deadline:
                return None
            await asyncio.sleep(POLL_SECONDS)

    async def _release(self, session_id: int, lease: Any) -> None:
        async with self._writing() as s:
            await store.release(s, session_id, lease)
            await s.commit()

    async def _call(
        self,
        user_id: int,
        messages: list[ChatMessage],
        *,
        schema: dict[str, Any] | None = None,
        name: str = "result",
    ) -> str | Kind:
        assert self.provider is not None
        try:
            if self.budget is None:
                return await self._complete(messages, schema, name)
            async with self.budget.call(user_id):
                return await self._complete(messages, schema, name)
        except BudgetExceeded as e:
            return Kind(e.reason.value)
        except LLMError as e:
            log.warning("user %s: AI session model call failed: %s", user_id, e)
            return Kind.fallback

    async def _complete(
        self, messages: list[ChatMessage], schema: dict[str, Any] | None, name: str
    ) -> str:
        assert self.provider is not None
        try:
            async with asyncio.timeout(self.config.timeout):
                if schema is None:
                    return await self.provider.complete(
                        messages, max_tokens=self.config.max_tokens,
                        temperature=self.config.temperature)  # fmt: skip
                return await self.provider.complete_json(
                    messages, schema=schema, name=name, max_tokens=self.config.result_max_tokens,
                    temperature=self.config.temperature)  # fmt: skip
        except TimeoutError as e:
            raise LLMError(f"no answer within {self.config.timeout:g}s") from e
        except LLMError:
            raise
        except Exception as e:
            log.exception("LLM provider raised unexpectedly")
            raise LLMError(f"provider error: {type(e).__name__}") from e
