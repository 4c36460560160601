"""What the model sees: the persona, what is known about the user, the recent turns."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from relove.conversation.base import ChatMessage
from relove.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PERSONA_FILE = Path(__file__).with_name("persona.md")
MAX_MARKERS_CHARS = 3000
MAX_CONTEXT_CHARS = 4000

#: Keys of ``markers`` that are bookkeeping, not facts about the person.
_HIDDEN_MARKERS = {"gender_source"}

SUMMARY_SYSTEM = (
    "Ты ведёшь краткую сводку о собеседнике для будущих разговоров. "
    "Перепиши сводку: сохрани всё важное из прежней (факты о человеке, его интересы, "
    "запросы, договорённости, настроение) и добавь новое из свежих реплик. "
    "Пиши по-русски, в третьем лице, до 1200 символов, без вступлений — только сводку."
)


def load_persona(path: Path | None) -> str:
    """The system prompt from ``RELOVE_PERSONA_FILE`` (or the shipped default)."""
    target = Path(path) if path else DEFAULT_PERSONA_FILE
    try:
        text = target.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"RELOVE_PERSONA_FILE: cannot read {target}: {e}") from e
    if not text:
        raise ConfigError(f"RELOVE_PERSONA_FILE: {target} is empty")
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def profile_block(user: dict[str, Any]) -> str:
    """The facts about the user, as a second system message."""
    markers = {k: v for k, v in (user.get("markers") or {}).items() if k not in _HIDDEN_MARKERS}
    context = user.get("context") or {}
    lines = ["Что известно о собеседнике (не пересказывай это ему дословно):"]
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    if name:
        lines.append(f"Имя: {name}")
    gender = user.get("gender")
    if gender in ("male", "female"):
        lines.append("Пол: " + ("мужской" if gender == "male" else "женский"))
    if markers:
        lines.append(
            "Маркеры: " + _clip(json.dumps(markers, ensure_ascii=False), MAX_MARKERS_CHARS)
        )
    summary = context.get("summary")
    if isinstance(summary, str) and summary.strip():
        lines.append("Сводка прошлых разговоров: " + _clip(summary.strip(), MAX_CONTEXT_CHARS))
    relove = context.get("relove_context")
    if relove:
        text = relove if isinstance(relove, str) else json.dumps(relove, ensure_ascii=False)
        lines.append("Контекст reLove: " + _clip(text, MAX_CONTEXT_CHARS))
    return "\n".join(lines)


def turns_of(context: dict[str, Any]) -> list[dict[str, Any]]:
    turns = context.get("turns")
    if not isinstance(turns, list):
        return []
    return [
        t
        for t in turns
        if isinstance(t, dict) and t.get("role") in ("user", "assistant") and t.get("text")
    ]


def conversation_messages(persona: str, user: dict[str, Any]) -> list[ChatMessage]:
    """Persona, profile, then the recent turns (the last one is the message being answered)."""
    messages = [ChatMessage("system", persona), ChatMessage("system", profile_block(user))]
    for turn in turns_of(user.get("context") or {}):
        messages.append(ChatMessage(turn["role"], str(turn["text"])))
    return messages


def summary_messages(previous: str | None, turns: list[dict[str, Any]]) -> list[ChatMessage]:
    dialogue = "\n".join(
        ("Собеседник: " if t["role"] == "user" else "Бот: ") + str(t["text"]) for t in turns
    )
    body = (
        f"Прежняя сводка:\n{previous.strip() if previous else '(пока нет)'}\n\n"
        f"Новые реплики:\n{dialogue}\n\nНовая сводка:"
    )
    return [ChatMessage("system", SUMMARY_SYSTEM), ChatMessage("user", body)]
