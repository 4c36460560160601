"""Telegram's HTML parse mode, checked the way the Bot API checks it.

One implementation for the product (a broadcast's text is checked before it is accepted) and the
sandbox Bot API (which refuses bad markup like Telegram does).

:func:`parse_html` turns ``parse_mode=HTML`` text into plain text plus message entities (offsets
in UTF-16 code units, as Telegram counts them) or raises :class:`EntityParseError` with the
description Telegram gives (the caller prefixes ``Bad Request: can't parse entities: ``).

The rules follow Telegram's server parser: only the supported tags are accepted, named entities
are limited to ``&lt; &gt; &amp; &quot;`` (numeric ones are all fine, any other ``&`` is a literal
ampersand), a lone ``<`` is an unsupported start tag, unclosed and mismatched tags are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from relove.errors import InvalidInput
from relove.telegram.limits import utf16_len

TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
SUPPORTED_TAGS = frozenset(TAG_ENTITY)
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_NUMERIC = re.compile(r"&#(x[0-9a-fA-F]{1,8}|[0-9]{1,10});")
_NAMED = re.compile(r"&([a-zA-Z]{2,4});")
_SPACE = " \t\r\n\f\v"


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; ``str(e)`` is Telegram's description."""


def check_html(text: str, *, limit: int, allow_empty: bool = False) -> None:
    """Raise :class:`InvalidInput` unless ``text`` is valid Telegram HTML whose visible text is
    within ``limit`` UTF-16 code units (and not empty, unless ``allow_empty``)."""
    try:
        plain, _ = parse_html(text)
    except EntityParseError as e:
        raise InvalidInput(f"the message is not valid Telegram HTML: {e}") from e
    if not plain.strip() and not allow_empty:
        raise InvalidInput("the message text is empty")
    if utf16_len(plain) > limit:
        raise InvalidInput(f"the message is longer than {limit} characters")


@dataclass(slots=True)
class _Open:
    tag: str
    argument: str
    utf16_offset: int
    expandable: bool = False


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """The character an HTML entity at ``text[i]`` stands for and the index after it."""
    m = _NUMERIC.match(text, i)
    if m:
        raw = m.group(1)
        code = int(raw[1:], 16) if raw[0] in "xX" else int(raw)
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code), m.end()
        return None
    m = _NAMED.match(text, i)
    if m and m.group(1) in NAMED_ENTITIES:
        return NAMED_ENTITIES[m.group(1)], m.end()
    return None


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


def _read_attributes(text: str, i: int, tag: str, begin: int) -> tuple[int, str, bool]:
    """Parse a start tag's attributes from ``text[i]``: (index of '>', argument, expandable)."""
    n = len(text)
    argument = ""
    expandable = False
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if text[i] == ">":
            return i, argument, expandable
        name_start = i
        while i < n and text[i] not in _SPACE and text[i] not in "=>":
            i += 1
        name = text[name_start:i]
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != "=":
            if tag == "blockquote" and name.lower() == "expandable":
                expandable = True
                continue
            if i >= n:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            value = _unescape(text[i + 1 : end])
            i = end + 1
        else:
            value_start = i
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            value = _unescape(text[value_start:i])
        name = name.lower()
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
        elif tag == "pre" and name == "language":
            argument = value


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "&":
            decoded = _decode_entity(value, i)
            if decoded:
                out.append(decoded[0])
                i = decoded[1]
                continue
        out.append(value[i])
        i += 1
    return "".join(out)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and Bot API entities of Telegram-HTML ``text``; raise on bad markup."""
    out: list[str] = []
    offset = 0  # UTF-16 offset of the plain text produced so far
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded:
                ch, i = decoded
                out.append(ch)
                offset += utf16_len(ch)
                continue
        if c != "<":
            j = i + 1
            while j < n and text[j] not in "<&":
                j += 1
            chunk = text[i:j]
            out.append(chunk)
            offset += utf16_len(chunk)
            i = j
            continue
        begin = i
        i += 1
        if i < n and text[i] == "/":
            i = _close_tag(text, i + 1, begin, stack, entities, offset)
            continue
        name_start = i
        while i < n and text[i] not in _SPACE and text[i] != ">":
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        tag = text[name_start:i].lower()
        if tag not in SUPPORTED_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
            )
        i, argument, expandable = _read_attributes(text, i, tag, begin)
        if tag == "span" and argument != "spoiler":
            raise EntityParseError(
                'Tag "span" must have class "tg-spoiler" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        stack.append(_Open(tag, argument, offset, expandable))
        i += 1  # past '>'
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_tag(
    text: str, i: int, begin: int, stack: list[_Open], entities: list[dict[str, Any]], offset: int
) -> int:
    n = len(text)
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
    name_start = i
    while i < n and text[i] not in _SPACE and text[i] != ">":
        i += 1
    end_name = text[name_start:i].lower()
    while i < n and text[i] in _SPACE:
        i += 1
    if i >= n or text[i] != ">":
        raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
    opened = stack.pop()
    if end_name and end_name != opened.tag:
        raise EntityParseError(
            f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
            f'expected "</{opened.tag}>", found "</{end_name}>"'
        )
    length = offset - opened.utf16_offset
    if length > 0:
        last = entities[-1] if entities else None
        if (
            opened.tag == "pre"
            and last is not None
            and last["type"] == "pre"
            and (last["offset"], last["length"]) == (opened.utf16_offset, length)
        ):
            return i + 1  # <pre><code class="language-x">…</code></pre> is one entity
        entities.append(_entity(opened, length, stack))
    return i + 1


def _entity(opened: _Open, length: int, stack: list[_Open]) -> dict[str, Any]:
    kind = TAG_ENTITY[opened.tag]
    entity: dict[str, Any] = {"type": kind, "offset": opened.utf16_offset, "length": length}
    if kind == "text_link":
        entity["url"] = opened.argument
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = opened.argument
    elif kind == "blockquote" and opened.expandable:
        entity["type"] = "expandable_blockquote"
    elif kind == "pre" and opened.argument:
        entity["language"] = opened.argument
    elif kind == "code" and opened.argument and stack and stack[-1].tag == "pre":
        # <pre><code class="language-x"> is a pre block with a language, as in Telegram.
        entity["type"] = "pre"
        entity["language"] = opened.argument
    return entity
