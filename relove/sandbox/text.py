"""The text of a message or caption on its way through the Bot API, as Telegram treats it.

Two stages, because the official server checks them at different times:

1. :func:`parse` — before the chat is looked at: the ``parse_mode`` (HTML, Markdown, MarkdownV2;
   ``can't parse entities: …``) or the explicit ``entities`` (``can't parse MessageEntity: …``).
2. :func:`finish` — once the chat is known: link URLs checked and normalised, ``tg://user?id=``
   links turned into ``text_mention`` (for users who have talked to the bot; otherwise plain
   text), control characters replaced, ``\\r`` removed, leading and trailing spaces and newlines
   trimmed (``text must be non-empty`` if nothing is left), auto-detected entities (links,
   mentions, hashtags, commands …, :mod:`relove.sandbox.autodetect`) added where no other
   entity is, and the length limit.

Users' messages (the control API, the web chat) get :func:`clean_user_text` — the same clean-up
and auto-detection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from relove.sandbox.apierrors import ApiError, bad_request
from relove.sandbox.autodetect import find_entities
from relove.sandbox.links import LinkError, check_link, checked_link, link_user_id
from relove.sandbox.markdown import MarkdownError, parse_markdown
from relove.sandbox.params import Params
from relove.sandbox.state import World
from relove.telegram.html import EntityParseError, parse_html
from relove.telegram.limits import CAPTION_LIMIT, TEXT_LIMIT, utf16_len

#: the official server refuses longer raw text before parsing it
RAW_LIMIT = 1 << 15
#: entity kinds an auto-detected entity must not overlap (tdlib: continuous and pre entities)
BLOCKING = frozenset({"mention", "hashtag", "cashtag", "bot_command", "url", "email",
                      "phone_number", "bank_card_number", "text_link", "text_mention",
                      "custom_emoji", "code", "pre", "date_time"})
QUOTES = frozenset({"blockquote", "expandable_blockquote"})
AUTO = frozenset({"mention", "hashtag", "cashtag", "bot_command", "url", "email",
                  "phone_number", "bank_card_number"})
USER_KINDS = frozenset({"bold", "italic", "underline", "strikethrough", "spoiler", "code",
                        "pre", "text_link", "text_mention", "custom_emoji", "blockquote",
                        "expandable_blockquote", "date_time"})
#: tdlib's order of entities that start and end together
PRIORITY = {"blockquote": 0, "expandable_blockquote": 0, "pre": 11, "code": 20,
            "date_time": 30, "text_link": 49, "text_mention": 49, "bold": 90, "italic": 91,
            "underline": 92, "strikethrough": 93, "spoiler": 94, "custom_emoji": 99}
_NEEDS_CLEANING = re.compile("[\x00-\x09\x0b-\x1f\r\u2028-\u202e\u030a\u0333\u033f]")
_REMOVED = frozenset("\r\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u030a\u0333\u033f")
_TRIM = " \n"


@dataclass(slots=True)
class Parsed:
    """A text after stage 1: plain text, its entities and how the bot sent it."""

    text: str
    entities: list[dict[str, Any]]
    source: str
    mode: str | None


def _sort_key(entity: dict[str, Any]) -> tuple[int, int, int]:
    kind = entity["type"]
    priority = 10 if kind == "pre" and entity.get("language") else PRIORITY.get(kind, 50)
    return entity["offset"], -entity["length"], priority


# --- stage 1 ----------------------------------------------------------------------------------
def parse(raw: str, p: Params, entities_key: str) -> Parsed:
    """Parse ``raw`` by the call's ``parse_mode`` (or read its explicit entities)."""
    if len(raw.encode("utf-8", "surrogatepass")) > RAW_LIMIT:
        raise bad_request("text is too long")
    given_mode = p.raw("parse_mode")
    mode = given_mode.lower()
    if raw and mode and mode != "none":
        try:
            if mode == "html":
                text, entities = parse_html(raw)
                entities = _html_links(text, entities)
            elif mode == "markdown":
                text, entities = parse_markdown(raw, 1)
            elif mode == "markdownv2":
                text, entities = parse_markdown(raw, 2)
            else:
                raise bad_request("unsupported parse_mode")
        except (EntityParseError, MarkdownError) as e:
            raise bad_request(f"can't parse entities: {e}") from None
        return Parsed(text, entities, raw, given_mode)
    return Parsed(raw, _explicit(p, entities_key), raw, given_mode or None)


def _html_links(text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``<a href>`` as Telegram reads it: an empty href links the text itself, a
    ``tg://user?id=`` link mentions that user, other URLs are normalised or dropped."""
    if not any(e["type"] == "text_link" for e in entities):
        return entities
    units = text.encode("utf-16-le", "surrogatepass")
    out = []
    for entity in entities:
        if entity["type"] != "text_link":
            out.append(entity)
            continue
        url = entity.get("url") or units[2 * entity["offset"]:
                                          2 * (entity["offset"] + entity["length"])
                                          ].decode("utf-16-le", "surrogatepass")
        user_id = link_user_id(url)
        if user_id is not None:
            out.append({"type": "text_mention", "offset": entity["offset"],
                        "length": entity["length"], "user_id": user_id})
            continue
        checked = checked_link(url)
        if checked is not None:
            out.append({**entity, "url": checked})
    return out


def _int_field(entity: dict[str, Any], name: str) -> int:
    if name not in entity:
        raise ValueError(f'Can\'t find field "{name}"')
    value = entity[name]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f'Field "{name}" must be a Number')
    try:
        return int(value)
    except ValueError:
        raise ValueError(f'Field "{name}" must be a valid Number') from None


def _str_field(entity: dict[str, Any], name: str, required: bool = True) -> str:
    if name not in entity:
        if required:
            raise ValueError(f'Can\'t find field "{name}"')
        return ""
    value = entity[name]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f'Field "{name}" must be of type String')
    return value


def _explicit_entity(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        raise ValueError("expected an Object")
    offset, length = _int_field(item, "offset"), _int_field(item, "length")
    kind = _str_field(item, "type")
    if not kind:
        raise ValueError("Type is not specified")
    if kind in AUTO:
        return None  # Telegram finds these itself
    if kind not in USER_KINDS:
        raise ValueError("Unsupported type specified")
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if kind == "pre":
        language = _str_field(item, "language", required=False)
        if language:
            entity["language"] = language
    elif kind == "text_link":
        entity["url"] = _str_field(item, "url")
    elif kind == "text_mention":
        user = item.get("user")
        if not isinstance(user, dict):
            raise ValueError('Can\'t find field "user"' if user is None
                             else 'Field "user" must be of type Object')
        entity = {"type": "text_mention", "offset": offset, "length": length,
                  "user_id": _int_field(user, "id")}
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = str(_int_field(item, "custom_emoji_id"))
    elif kind == "date_time":
        entity["unix_time"] = _int_field(item, "unix_time")
        fmt = _str_field(item, "date_time_format", required=False)
        if fmt:
            entity["date_time_format"] = fmt
    return entity


def _explicit(p: Params, key: str) -> list[dict[str, Any]]:
    try:
        given = p.json(key)
    except ApiError:
        return []  # the official server ignores entities that are not JSON
    if not isinstance(given, list):
        return []
    entities = []
    for item in given:
        try:
            entity = _explicit_entity(item)
        except ValueError as e:
            raise bad_request(f"can't parse MessageEntity: {e}") from None
        if entity is not None:
            entities.append(entity)
    return entities


# --- stage 2 ----------------------------------------------------------------------------------
def finish(parsed: Parsed, world: World, *, kind: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities Telegram stores (``kind`` "text" or "caption"), or its error."""
    entities = _checked_entities(parsed.entities, world)
    text, entities = cleaned(parsed.text, entities)
    if not text:
        if kind == "text":
            raise bad_request("text must be non-empty")
        return "", []
    entities = _merge(entities, find_entities(text))
    if utf16_len(text) > (TEXT_LIMIT if kind == "text" else CAPTION_LIMIT):
        raise bad_request("message is too long" if kind == "text"
                          else "message caption is too long")
    return text, entities


def _checked_entities(entities: list[dict[str, Any]], world: World) -> list[dict[str, Any]]:
    out = []
    for entity in entities:
        offset, length = entity["offset"], entity["length"]
        if offset < 0 or offset > 1_000_000:
            raise bad_request(f"receive an entity with incorrect offset {offset}")
        if length < 0 or length > 1_000_000:
            raise bad_request(f"receive an entity with incorrect length {length}")
        if length == 0:
            continue
        kind = entity["type"]
        if kind == "text_link" and link_user_id(entity["url"]) is not None:
            entity = {"type": "text_mention", "offset": offset, "length": length,
                      "user_id": link_user_id(entity["url"])}
            kind = "text_mention"
        if kind == "text_link":
            if not entity["url"]:
                continue
            try:
                entity = {**entity, "url": check_link(entity["url"])}
            except LinkError as e:
                raise bad_request(f"entity {e}") from None
        elif kind == "text_mention":
            user = world.users.get(entity["user_id"])
            if user is None or not user.started:
                continue  # a mention of someone who never talked to the bot is plain text
            entity = {"type": "text_mention", "offset": offset, "length": length,
                      "user": user.tg_user()}
        out.append(entity)
    out.sort(key=_sort_key)
    return out


def _position_map(text: str) -> tuple[str, dict[int, int], int]:
    """The cleaned text and, for every UTF-16 offset of ``text`` on a character boundary, the
    offset it moves to; plus the UTF-16 length of ``text``."""
    out: list[str] = []
    positions = {0: 0}
    old = new = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        old += width
        if ch in _REMOVED:
            pass
        elif ord(ch) < 32 and ch != "\n":
            out.append(" ")
            new += 1
        else:
            out.append(ch)
            new += width
        positions[old] = new
    return "".join(out), positions, old


def cleaned(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Control characters replaced, ``\\r`` and some invisible marks removed, then spaces and
    newlines trimmed from both ends; entities follow their text."""
    if entities or _NEEDS_CLEANING.search(text):
        clean, positions, total = _position_map(text)
        moved = []
        for entity in entities:
            start, end = entity["offset"], entity["offset"] + entity["length"]
            if start > total:
                raise bad_request(
                    f"entity begins after the end of the text at UTF-16 offset {start}")
            if end > total:
                raise bad_request(f"entity beginning at UTF-16 offset {start} ends after the "
                                  f"end of the text at UTF-16 offset {end}")
            if start not in positions or end not in positions:
                raise bad_request("entity begins in a middle of a UTF-16 symbol")
            new_start, new_end = positions[start], positions[end]
            if new_end > new_start:
                moved.append({**entity, "offset": new_start, "length": new_end - new_start})
        text, entities = clean, moved
    return _trimmed(text, entities)


def _trimmed(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    right = text.rstrip(_TRIM)
    if not right:
        return "", []
    if len(right) != len(text):
        end = utf16_len(right)
        entities = [{**e, "length": min(e["length"], end - e["offset"])}
                    for e in entities if e["offset"] < end]
    first = min((e["offset"] for e in entities), default=len(right))
    cut = 0
    while cut < first and right[cut] in _TRIM:
        cut += 1
    if cut:
        right = right[cut:]
        entities = [{**e, "offset": e["offset"] - cut} for e in entities]
    entities.sort(key=_sort_key)
    return right, entities


def _merge(entities: list[dict[str, Any]], found: list[dict[str, Any]]
           ) -> list[dict[str, Any]]:
    """Add auto-detected entities that overlap no entity of a blocking kind and cross no
    quote's edge."""
    if not found:
        return entities
    if not entities:
        return found
    blocking = [(e["offset"], e["offset"] + e["length"]) for e in entities
                if e["type"] in BLOCKING]
    quotes = [(e["offset"], e["offset"] + e["length"]) for e in entities if e["type"] in QUOTES]
    out = list(entities)
    for entity in found:
        start, end = entity["offset"], entity["offset"] + entity["length"]
        if any(start < b_end and b_start < end for b_start, b_end in blocking):
            continue
        if any(start < q_end and q_start < end and not (q_start <= start and end <= q_end)
               for q_start, q_end in quotes):
            continue
        out.append(entity)
    out.sort(key=_sort_key)
    return out


def clean_user_text(text: str) -> tuple[str, list[dict[str, Any]]]:
    """A simulated user's message as Telegram delivers it: cleaned, trimmed, entities found."""
    text, _ = cleaned(text, [])
    return text, find_entities(text)
