"""Everything the conversation features need, built once from settings and passed to handlers
as ``conversation`` (one :class:`ConversationComponents`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.config import Settings
from relove.conversation.ai_sessions.service import AIConfig, AISessionService
from relove.conversation.base import BaseLLMProvider
from relove.conversation.budget import budget_prefix, build_budget
from relove.conversation.catalog import CatalogRegistry
from relove.conversation.gender import GenderGuesser, infer_and_store
from relove.conversation.prompt import load_persona
from relove.conversation.recommend import Recommender
from relove.conversation.scenarios import ScenarioRegistry
from relove.conversation.scenarios.engine import ScenarioEngine
from relove.conversation.service import ConversationConfig, ConversationService
from relove.conversation.yamlfile import DefinitionError
from relove.db.models import Gender, UserSnapshot
from relove.errors import ConfigError

R = TypeVar("R")

log = logging.getLogger(__name__)


def create_provider(settings: Settings) -> BaseLLMProvider | None:
    """The OpenAI-compatible provider, or ``None`` (no-LLM mode) when it is not configured."""
    if not settings.llm_enabled:
        return None
    from relove.conversation.openai_provider import OpenAIProvider

    return OpenAIProvider(
        model=settings.llm_model or "",
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout=settings.llm_timeout,
        retries=settings.llm_retries,
        structured=settings.llm_structured_output,
    )


@dataclass
class ConversationComponents:
    session_factory: async_sessionmaker[AsyncSession]
    scenarios: ScenarioRegistry
    engine: ScenarioEngine
    catalog: CatalogRegistry
    recommender: Recommender
    chat: ConversationService | None = None
    gender: GenderGuesser | None = None
    ai: AISessionService | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    _inferring: set[int] = field(default_factory=set)

    @property
    def llm_enabled(self) -> bool:
        return self.chat is not None

    # -- gender inference, off the hot path ------------------------------------------------------
    def maybe_infer_gender(self, user: UserSnapshot) -> None:
        """Schedule inference for a user whose gender is unknown and whose current first name
        has not been tried yet. Cheap when there is nothing to do."""
        if self.gender is None or not user.first_name:
            return
        if Gender(user.gender) is not Gender.unknown:
            return
        if (user.context or {}).get("gender_tried") == user.first_name:
            return
        if user.id in self._inferring:
            return
        self._inferring.add(user.id)
        task = asyncio.create_task(self._infer(user.id, user.first_name))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _infer(self, user_id: int, first_name: str) -> None:
        assert self.gender is not None
        try:
            async with self.session_factory() as s:
                await infer_and_store(s, self.gender, user_id, first_name)
                await s.commit()
        except Exception:
            log.exception("gender inference for user %s failed", user_id)
        finally:
            self._inferring.discard(user_id)

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self.chat is not None:
            await self.chat.drain()

    async def close(self) -> None:
        await self.drain()
        if self.chat is not None:
            await self.chat.close()


def _load_or_empty(loader: Callable[[Path | None], R], path: Path | None, what: str) -> R:
    try:
        return loader(path)
    except DefinitionError as e:
        log.error("%s file rejected, starting without it: %s", what, e)
        return loader(None)


def build_components(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    *,
    provider: BaseLLMProvider | None = None,
    strict: bool = False,
) -> ConversationComponents:
    """Build from settings. ``strict``: a broken scenario/catalog file raises
    ``DefinitionError`` (CLI start-up); otherwise it is logged and the bot starts without it,
    and an admin fixes the file and runs /reload."""
    if strict:
        scenarios = ScenarioRegistry.from_file(settings.scenarios_file)
        catalog = CatalogRegistry.from_file(settings.catalog_file)
    else:
        scenarios = _load_or_empty(ScenarioRegistry.from_file, settings.scenarios_file, "scenario")
        catalog = _load_or_empty(CatalogRegistry.from_file, settings.catalog_file, "catalog")
        # keep the paths so /reload can pick up a fixed file
        scenarios.path = settings.scenarios_file
        catalog.path = settings.catalog_file
    provider = provider or create_provider(settings)
    chat = None
    persona = load_persona(None)
    if provider is not None:
        try:
            persona = load_persona(settings.persona_file)
        except ConfigError as e:
            if strict:
                raise
            log.error("%s; using the shipped persona", e)
            persona = load_persona(None)
        # shared by every bot instance through Redis when RELOVE_REDIS_URL is set
        budget = build_budget(
            redis_url=settings.redis_url,
            prefix=budget_prefix(settings.token),
            rate=settings.llm_user_rate,
            rate_period=settings.llm_user_rate_period,
            daily=settings.llm_daily_budget,
            concurrency=settings.llm_concurrency,
            queue_timeout=settings.llm_queue_timeout,
            slot_ttl=settings.llm_timeout + 60,
        )
        chat = ConversationService(
            provider,
            session_factory,
            budget,
            persona,
            ConversationConfig(
                history_turns=settings.history_turns,
                summary_every=settings.summary_every,
                timeout=settings.llm_timeout,
                max_tokens=settings.llm_max_tokens,
                temperature=settings.llm_temperature,
            ),
        )
    ai = AISessionService(
        session_factory,
        scenarios,
        catalog,
        provider,
        chat.budget if chat is not None else None,
        persona,
        AIConfig(
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
            result_max_tokens=settings.ai_result_max_tokens,
            temperature=settings.llm_temperature,
        ),
    )
    return ConversationComponents(
        ai=ai,
        session_factory=session_factory,
        scenarios=scenarios,
        engine=ScenarioEngine(scenarios),
        catalog=catalog,
        recommender=Recommender(
            catalog, count=settings.recommend_count, memory=settings.recommend_memory
        ),
        chat=chat,
        gender=GenderGuesser() if settings.gender_inference else None,
    )
