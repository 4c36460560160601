"""The LLM provider interface: everything the conversation needs from a language model.

Implementations are named after their backend (:class:`~relove.conversation.openai_provider.
OpenAIProvider`); no-LLM mode is simply "no provider" (``None``), in which the bot answers with
scripted texts and keeps no summaries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from relove.errors import ReloveError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


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

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""
