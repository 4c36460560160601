"""The LLM provider on the official ``openai`` SDK: OpenAI, OpenRouter, Ollama, vLLM … —
anything that speaks the OpenAI chat-completions API."""

from __future__ import annotations

import logging
import time
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from relove.conversation.base import (
    BaseLLMProvider,
    ChatMessage,
    Completion,
    LLMError,
    LLMTimeout,
)

log = logging.getLogger(__name__)


def _message_param(m: ChatMessage) -> ChatCompletionMessageParam:
    """One message in the SDK's typed shape (a TypedDict per role)."""
    if m.role == "system":
        return {"role": "system", "content": m.content}
    if m.role == "user":
        return {"role": "user", "content": m.content}
    return {"role": "assistant", "content": m.content}


class OpenAIProvider(BaseLLMProvider):
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 1,
        structured: str = "json_schema",
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.structured = structured
        # Local servers (Ollama, vLLM) accept any key, but the SDK insists on one.
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=retries,
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        return await self._create(
            messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        )

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
        """``response_format``: a JSON schema (``structured="json_schema"``), JSON mode
        (``"json_object"``, servers without schemas) or nothing (``"off"``: the prompt asks)."""
        response_format: dict[str, Any] | None = None
        if self.structured == "json_schema":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": False},
            }
        elif self.structured == "json_object":
            response_format = {"type": "json_object"}
        return await self._create(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            timeout=timeout,
            response_format=response_format,
        )

    async def _create(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int | None,
        temperature: float | None,
        timeout: float | None,
        response_format: dict[str, Any] | None = None,
    ) -> str:
        kwargs: dict = {}
        if response_format is not None:
            kwargs["response_format"] = response_format
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        started = time.monotonic()
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=[_message_param(m) for m in messages],
                timeout=timeout if timeout is not None else self.timeout,
                **kwargs,
            )
        except openai.APITimeoutError as e:
            raise LLMTimeout(f"the model did not answer in {self.timeout:g}s") from e
        except openai.APIStatusError as e:
            raise LLMError(f"the model server answered HTTP {e.status_code}") from e
        except openai.APIError as e:
            raise LLMError(f"the model request failed: {type(e).__name__}") from e
        except (ValueError, TypeError) as e:  # a body that is not a chat completion
            raise LLMError("the model server sent an invalid answer") from e
        choices = getattr(response, "choices", None) or []
        content = None
        if choices and getattr(choices[0], "message", None) is not None:
            content = choices[0].message.content
        if not isinstance(content, str) or not content.strip():
            raise LLMError("the model sent an empty answer")
        log.debug("LLM answered in %.2fs (%d chars)", time.monotonic() - started, len(content))
        usage = getattr(response, "usage", None)
        return Completion.of(
            content.strip(),
            model=getattr(response, "model", None) or self.model,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
        )

    async def close(self) -> None:
        await self._client.close()
