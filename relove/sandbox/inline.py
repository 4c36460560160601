"""Answers to users' button presses and inline queries: answerCallbackQuery and
answerInlineQuery (the users' side is :meth:`Sandbox.user_press_button` and
:meth:`Sandbox.user_inline_query`)."""

from __future__ import annotations

import json
import time
from typing import Any

from relove.sandbox.core import ApiError, Sandbox, bad_request
from relove.sandbox.params import Params
from relove.sandbox.text import parse

TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
RESULT_TYPES = frozenset({"article", "audio", "contact", "document", "game", "gif", "location",
                          "mpeg4_gif", "photo", "sticker", "venue", "video", "voice"})
MAX_RESULTS = 50


async def answer_callback_query(sb: Sandbox, p: Params) -> Any:
    query = sb.callbacks.get(p.raw("callback_query_id"))
    if query is None or query.answered:
        raise bad_request(TOO_OLD)
    query.answered = True
    query.answer = {"text": p.raw("text") or None, "show_alert": p.bool("show_alert"),
                    "url": p.raw("url") or None, "date": time.time()}
    chat = sb.world.chats.get(query.chat_id)
    if chat is not None:
        chat.touch()
    return True


def _string(item: dict[str, Any], name: str, required: bool) -> str:
    if name not in item:
        if required:
            raise ValueError(f'Can\'t find field "{name}"')
        return ""
    value = item[name]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f'Field "{name}" must be of type String')
    return value


def _result(item: Any) -> dict[str, Any]:
    """One InlineQueryResult, checked as the official server does; ValueError otherwise."""
    if not isinstance(item, dict):
        raise ValueError("Inline query result must be an object")
    kind = _string(item, "type", True).lower()
    _string(item, "id", True)
    content = item.get("input_message_content")
    if content is not None and not isinstance(content, dict):
        raise ValueError('Field "input_message_content" must be of type Object')
    source = content if content is not None else item
    text = _string(source, "message_text", kind == "article" and content is None)
    if text:
        try:
            parse(text, Params({k: source[k] for k in ("parse_mode", "entities")
                                if k in source}), "entities")
        except ApiError as e:
            detail = e.description.removeprefix("Bad Request: ")
            raise ValueError(detail[:1].upper() + detail[1:]) from None
    elif kind == "article" and content is not None:
        raise ValueError("Input message content is not specified")
    if kind not in RESULT_TYPES:
        raise ValueError(f'type "{kind}" is unsupported for the inline query result')
    if kind == "article":
        _string(item, "title", True)
    return item


async def answer_inline_query(sb: Sandbox, p: Params) -> Any:
    results: list[dict[str, Any]] = []
    raw = p.raw("results")
    if raw:
        try:
            given = p.values["results"] if not isinstance(p.values["results"], str) else (
                json.loads(raw))
        except ValueError as e:
            raise bad_request(f"can't parse JSON encoded inline query results: {e}") from None
        if given is not None:
            if not isinstance(given, list):
                raise bad_request("expected an Array of inline query results")
            if len(given) > MAX_RESULTS:
                raise bad_request("too many inline query results specified")
            for item in given:
                try:
                    results.append(_result(item))
                except ValueError as e:
                    raise bad_request(f"can't parse inline query result: {e}") from None
    query = sb.inline_queries.get(p.raw("inline_query_id"))
    if query is None or query.answered:
        raise bad_request(TOO_OLD)
    ids = [str(r["id"]) for r in results]
    if len(set(ids)) != len(ids):
        raise bad_request("RESULT_ID_DUPLICATE")
    if any(not 1 <= len(i.encode()) <= 64 for i in ids):
        raise bad_request("RESULT_ID_INVALID")
    query.answered = True
    query.answer = {"results": results, "next_offset": p.raw("next_offset"),
                    "cache_time": p.values.get("cache_time"), "is_personal": p.bool("is_personal"),
                    "button": p.json("button", "can't parse inline query results button JSON "
                                               "object"),
                    "date": time.time()}
    chat = sb.world.chats.get(query.user_id)
    if chat is not None:
        chat.touch()
    return True
