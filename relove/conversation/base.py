"""The LLM provider interface: everything the conversation needs from a language model.

Implementations are named after their backend (:class:`~relove.conversation.openai_provider.
OpenAIProvider`); no-LLM mode is simply "no provider" (``None``), in which the bot answers with
scripted texts and keeps no summaries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from relove.errors import ReloveError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


class Completion(str):
    """A reply text that also says which model wrote it and how many tokens it took (what a
    provider knows; ``None`` otherwise). It is a ``str``: callers that only want the text
    need nothing else."""

    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def of(
        cls,
        text: str,
        *,
        model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> Completion:
        out = cls(text)
        out.model, out.prompt_tokens, out.completion_tokens = (
            model, prompt_tokens, completion_tokens)
        return out


class LLMError(ReloveError):
    """The model did not give a usable answer (timeout, HTTP error, empty or invalid reply)."""


class LLMTimeout(LLMError):
    pass


class BaseLLMProvider(ABC):
    """A chat-completion backend."""

    name: str = "llm"

    @abstractmethod
    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """The model's reply text (stripped, non-empty) or :class:`LLMError`."""

    async def complete_json(
        self,
        messages: list[ChatMessage],
        *,
        schema: dict[str, Any],
        name: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """The model's answer, asked to be one JSON object matching ``schema`` (the backend's
        structured output where it has one). The caller validates it; this only asks."""
        return await self.complete(
            messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        )

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""
