"""Getting a mode's result out of a dialogue: the request, validation, one repair retry.

Shared by the bot (:mod:`.service`) and ``relove conversation eval`` (scripted dialogues scored
against the configured model), so an operator tunes prompts on exactly what the bot runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from relove.conversation.ai_sessions.modes import AIMode
from relove.conversation.ai_sessions.result import ResultInvalid, json_schema, validate_result
from relove.conversation.base import ChatMessage
from relove.conversation.catalog import CatalogItem

log = logging.getLogger(__name__)

#: Sends messages with the result's schema; the model's text, or ``None`` when it gave none
#: (failure, budget).
Ask = Callable[[list[ChatMessage], dict[str, Any]], Awaitable[str | None]]


@dataclass
class Extraction:
    result: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)  #: why each invalid answer was refused
    no_answer: bool = False  #: the model gave no answer at all (nothing to validate)
    dropped: int = 0  #: recommended ids that are not in the catalog


def result_messages(
    mode: AIMode, history: list[tuple[str, str]], offered: list[CatalogItem], recommending: bool
) -> list[ChatMessage]:
    dialogue = "\n".join(("Собеседник: " if r == "user" else "Ведущий: ") + t for r, t in history)
    system = (
        "Ты подводишь итог разговора. Цель разговора была: " + mode.goal + "\n"
        "Верни только один JSON-объект строго по заданной схеме, без пояснений и Markdown."
    )
    if recommending:
        lines = [f"- {i.id}: {i.title}" + (f" — {i.text[:200]}" if i.text else "") for i in offered]
        system += (
            "\nВ поле recommendations выбери из каталога (только эти id) то, к чему человек "
            "готов, с короткой причиной; если ничего не подходит — пустой список.\n"
            + ("\n".join(lines) or "(каталог пуст)")
        )
    elif mode.recommend is not None:
        system += "\nПоле recommendations оставь пустым списком."
    return [ChatMessage("system", system), ChatMessage("user", "Разговор:\n" + dialogue)]


async def extract(
    ask: Ask,
    mode: AIMode,
    history: list[tuple[str, str]],
    offered: list[CatalogItem],
    *,
    recommending: bool,
) -> Extraction:
    """Ask for the result; an invalid answer gets ONE retry that quotes the error."""
    ids = [item.id for item in offered]
    schema = json_schema(mode, ids)
    messages = result_messages(mode, history, offered, recommending)
    out = Extraction()
    for _ in (1, 2):
        answer = await ask(messages, schema)
        if answer is None:
            out.no_answer = True
            return out
        try:
            out.result, out.dropped = validate_result(mode, answer, ids)
        except ResultInvalid as e:
            out.errors.append(str(e))
            messages = messages + [
                ChatMessage("assistant", answer[:4000]),
                ChatMessage(
                    "user",
                    f"Ответ не прошёл проверку: {e}. Верни исправленный ответ — только "
                    "JSON-объект строго по схеме.",
                ),
            ]
            continue
        if out.result is not None and mode.recommend is not None and not recommending:
            out.result["recommendations"] = []
        return out
    return out
