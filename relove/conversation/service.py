"""The companion: a user's free text → an LLM reply, with the recent turns kept in
``context.turns`` and a rolling ``context.summary`` rewritten off the reply's path.

Database work happens in short transactions of its own (never across the LLM call, so a slow
model never holds a database lock). Every LLM call passes the :class:`LLMBudget` first and runs
under one overall deadline (``llm_timeout``, retries included); any failure gives the fallback.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.conversation.base import BaseLLMProvider, ChatMessage, Completion, LLMError
from relove.conversation.budget import BaseLLMBudget, BudgetExceeded
from relove.conversation.prompt import conversation_messages, summary_messages, turns_of
from relove.db.models import UserSnapshot
from relove.db.types import utcnow
from relove.errors import DocumentTooLarge
from relove.events import EventSource, record
from relove.events.catalog import LLM_REPLIED
from relove.ops import metrics
from relove.users.service import (
    append_bounded,
    get_user_documents,
    increment,
    set_values_if,
)

log = logging.getLogger(__name__)

#: rounds of one summary pass at most
SUMMARY_ROUNDS = 10

MAX_TURN_CHARS = 1500
MAX_SUMMARY_CHARS = 2000


class ReplyKind(enum.StrEnum):
    answer = "answer"
    fallback = "fallback"
    rate = "rate"
    daily = "daily"
    busy = "busy"


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    text: str | None = None  # the model's Markdown, for ``answer`` only


@dataclass(frozen=True)
class ConversationConfig:
    history_turns: int = 16
    summary_every: int = 6
    timeout: float = 30.0
    max_tokens: int | None = 800
    temperature: float | None = None


def _replied(answer: str, seconds: float) -> dict[str, Any]:
    """``llm.replied`` props: the model, tokens (when the provider says) and latency."""
    prompt = getattr(answer, "prompt_tokens", None)
    completion = getattr(answer, "completion_tokens", None)
    tokens = prompt + completion if prompt is not None and completion is not None else None
    return {"model": getattr(answer, "model", None), "prompt_tokens": prompt,
            "completion_tokens": completion, "tokens": tokens,
            "latency_ms": round(seconds * 1000)}  # fmt: skip


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ConversationService:
    def __init__(
        self,
        provider: BaseLLMProvider,
        session_factory: async_sessionmaker[AsyncSession],
        budget: BaseLLMBudget,
        persona: str,
        config: ConversationConfig | None = None,
    ) -> None:
        self.provider = provider
        self.session_factory = session_factory
        self.budget = budget
        self.persona = persona
        self.config = config or ConversationConfig()
        if self.config.summary_every * 2 > self.config.history_turns:
            log.warning(
                "summary_every=%s with history_turns=%s: some turns leave the window before "
                "they are summarised",
                self.config.summary_every,
                self.config.history_turns,
            )
        self._summary_tasks: dict[int, asyncio.Task[None]] = {}
        self._summary_dirty: set[int] = set()

    # -- the reply ------------------------------------------------------------------------------
    async def reply(self, user: UserSnapshot, text: str) -> Reply:
        """Answer one message. Never raises for model trouble: returns a fallback instead."""
        refusal = await self.budget.refusal(user.id)
        if refusal is not None:
            metrics.LLM_REFUSED.labels(refusal.value).inc()
            log.info("user %s: LLM call refused (%s)", user.id, refusal)
            return Reply(ReplyKind(refusal.value))
        try:
            count, data = await self._record_user_turn(user, text)
        except DocumentTooLarge as e:
            log.error("user %s: cannot record the turn: %s", user.id, e)
            return Reply(ReplyKind.fallback)
        started = time.monotonic()
        try:
            async with self.budget.call(user.id):
                answer = await self._complete(conversation_messages(self.persona, data))
        except BudgetExceeded as e:
            metrics.LLM_REFUSED.labels(e.reason.value).inc()
            log.info("user %s: LLM call refused (%s)", user.id, e.reason)
            return Reply(ReplyKind(e.reason.value))
        except LLMError as e:
            log.warning("user %s: LLM failed, fallback reply: %s", user.id, e)
            return Reply(ReplyKind.fallback)
        replied = _replied(answer, time.monotonic() - started)
        try:
            await self._record_turn(user.id, "assistant", answer, count, replied=replied)
        except DocumentTooLarge as e:  # the answer is still worth sending
            log.error("user %s: cannot record the answer: %s", user.id, e)
        self.schedule_summary(user.id)
        return Reply(ReplyKind.answer, answer)

    async def _complete(
        self, messages: list[ChatMessage], *, max_tokens: int | None = None,
        kind: str = "reply",
    ) -> str:
        metrics.LLM_CALLS.labels(kind).inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout):
                answer = await self.provider.complete(
                    messages,
                    max_tokens=max_tokens or self.config.max_tokens,
                    temperature=self.config.temperature,
                )
        except TimeoutError as e:
            metrics.LLM_ERRORS.labels(kind).inc()
            raise LLMError(f"no answer within {self.config.timeout:g}s") from e
        except LLMError:
            metrics.LLM_ERRORS.labels(kind).inc()
            raise
        except Exception as e:  # a provider bug must not reach the user as a crash
            metrics.LLM_ERRORS.labels(kind).inc()
            log.exception("LLM provider raised unexpectedly")
            raise LLMError(f"provider error: {type(e).__name__}") from e
        finally:
            metrics.LLM_SECONDS.labels(kind).observe(time.perf_counter() - started)
        if isinstance(answer, Completion):
            if answer.prompt_tokens:
                metrics.LLM_TOKENS.labels("prompt").inc(answer.prompt_tokens)
            if answer.completion_tokens:
                metrics.LLM_TOKENS.labels("completion").inc(answer.completion_tokens)
        return answer

    async def _record_user_turn(self, user: UserSnapshot, text: str) -> tuple[int, dict[str, Any]]:
        async with self.session_factory() as s:
            count = int(await increment(s, user.id, "user_messages", doc="context"))
            await self._append(s, user.id, "user", text, count)
            docs = await get_user_documents(s, user.id)
            await s.commit()
        data = user.to_dict()
        data.update(docs)
        return count, data

    async def _record_turn(
        self, user_id: int, role: str, text: str, n: int, *, replied: dict[str, Any] | None = None
    ) -> None:
        async with self.session_factory() as s:
            await self._append(s, user_id, role, text, n)
            if replied is not None:
                await record(s, user_id, LLM_REPLIED, replied, source=EventSource.llm)
            await s.commit()

    async def _append(self, s: AsyncSession, user_id: int, role: str, text: str, n: int) -> None:
        turn = {
            "role": role,
            "text": _clip(text, MAX_TURN_CHARS),
            "at": utcnow().isoformat(timespec="seconds"),
            "n": n,
        }
        await append_bounded(s, user_id, "turns", turn, keep=self.config.history_turns)

    # -- the rolling summary --------------------------------------------------------------------
    def schedule_summary(self, user_id: int) -> None:
        """Make sure a summary pass runs for this user (at most one at a time per process)."""
        task = self._summary_tasks.get(user_id)
        if task is not None and not task.done():
            self._summary_dirty.add(user_id)
            return
        task = asyncio.create_task(self._summary_loop(user_id), name=f"summary-{user_id}")
        self._summary_tasks[user_id] = task
        task.add_done_callback(functools.partial(self._forget_task, user_id))

    def _forget_task(self, user_id: int, task: asyncio.Task[None]) -> None:
        if self._summary_tasks.get(user_id) is task:
            del self._summary_tasks[user_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("summary task of user %s failed", user_id, exc_info=task.exception())

    async def _summary_loop(self, user_id: int) -> None:
        while True:
            self._summary_dirty.discard(user_id)
            # one pass per user at a time, across processes when the budget lives in Redis
            ttl = self.config.timeout * (SUMMARY_ROUNDS + 1)
            try:
                async with self.budget.exclusive(f"summary:{user_id}", ttl) as held:
                    if not held:
                        log.info("user %s: summary being updated elsewhere", user_id)
                        return
                    await self.update_summary(user_id)
            except Exception:
                log.exception("user %s: summary update failed; the old summary stays", user_id)
                return
            if user_id not in self._summary_dirty:
                return

    async def update_summary(self, user_id: int) -> bool:
        """Rewrite ``context.summary`` while ``summary_every`` or more user messages are not in
        it yet. A compare-and-set on ``context.summary_count`` makes sure two processes never
        both apply an update; a model failure keeps the old summary. True if one was written."""
        wrote = False
        for _ in range(SUMMARY_ROUNDS):  # bounded: each round takes summary_every messages
            async with self.session_factory() as s:
                context = (await get_user_documents(s, user_id))["context"]
            count = int(context.get("user_messages") or 0)
            done = int(context.get("summary_count") or 0)
            if count - done < self.config.summary_every:
                return wrote
            new_turns = [t for t in turns_of(context) if int(t.get("n") or 0) > done]
            previous = context.get("summary") if isinstance(context.get("summary"), str) else None
            upto = count
            try:
                async with self.budget.call(user_id, count=False):
                    summary = await self._complete(
                        summary_messages(previous, new_turns), max_tokens=600, kind="summary"
                    )
            except (LLMError, BudgetExceeded) as e:
                log.warning("user %s: summary not updated, the old one stays: %s", user_id, e)
                return wrote
            async with self.session_factory() as s:
                result = await set_values_if(
                    s,
                    user_id,
                    {
                        "summary": _clip(summary, MAX_SUMMARY_CHARS),
                        "summary_updated_at": utcnow().isoformat(timespec="seconds"),
                        "summary_count": upto,
                    },
                    expect={"summary_count": context.get("summary_count")},
                    doc="context",
                )
                await s.commit()
            if result is None:
                log.info("user %s: summary was updated elsewhere; re-reading", user_id)
                continue
            wrote = True
            log.info("user %s: summary updated through message %s", user_id, upto)
        return wrote

    async def drain(self) -> None:
        """Wait for pending summary updates (tests, shutdown)."""
        while self._summary_tasks:
            await asyncio.gather(*list(self._summary_tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self.provider.close()
        await self.budget.close()
