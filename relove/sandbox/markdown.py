"""Telegram's ``Markdown`` and ``MarkdownV2`` parse modes, parsed and refused like the Bot API.

Only the emulator needs these (the product formats with HTML, :mod:`relove.telegram`), so they
live in the sandbox. The rules are tdlib's (``parse_markdown`` / ``parse_markdown_v2`` in
``td/telegram/MessageEntity.cpp``), re-implemented from their documented behaviour:

* **Markdown** (legacy): ``*bold*``, ``_italic_``, ```code```, ````pre````, ``[text](url)``; a
  backslash escapes ``_ * ` [``; an entity without its end is an error
  (``Can't find end of the entity starting at byte offset N``).
* **MarkdownV2**: adds ``__underline__``, ``~strike~``, ``||spoiler||``, ``>quote`` lines,
  ``![emoji](tg://emoji?id=…)``, nesting; every one of ``_*[]()~`>#+-=|{}.!`` outside an
  entity must be escaped (``Character '.' is reserved and must be escaped with the preceding
  '\\'``); inside ``code``/``pre`` only the backtick and backslash.

:func:`parse_markdown` returns the plain text and entities as :mod:`relove.sandbox.text` takes
them: offsets in UTF-16 units, ``text_link`` URLs already checked (an invalid one is dropped, as
Telegram does), ``tg://user?id=`` links as ``{"type": "text_mention", "user_id": id}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from relove.sandbox.links import checked_link, link_user_id


class MarkdownError(ValueError):
    """``str(e)`` is Telegram's description (after ``can't parse entities: ``)."""


#: tdlib's names of entity types in error messages
NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline",
         "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code", "pre": "Pre",
         "pre_code": "PreCode", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
         "blockquote": "BlockQuote", "expandable_blockquote": "ExpandableBlockQuote"}
RESERVED = frozenset("_*[]()~`>#+-=|{}.!\n")
_SPACE = frozenset(" \t\r\n\v\f")
_EMOJI_LINK = re.compile(r"^tg://emoji\?id=([0-9]{1,19})$", re.IGNORECASE)
_TIME_LINK = re.compile(r"^tg://time\?unix=(-?[0-9]{1,19})(?:&format=([a-zA-Z]*))?$",
                        re.IGNORECASE)


def _width(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8", "surrogatepass"))


def _at(text: str, i: int) -> str:
    return text[i] if 0 <= i < len(text) else ""


def _link_entity(url: str, offset: int, length: int) -> dict[str, Any] | None:
    user_id = link_user_id(url)
    if user_id is not None:
        return {"type": "text_mention", "offset": offset, "length": length, "user_id": user_id}
    checked = checked_link(url)
    if checked is None:
        return None
    return {"type": "text_link", "offset": offset, "length": length, "url": checked}


def _pre_language(text: str, i: int) -> tuple[int, str]:
    """After an opening `````: (index past the language and one newline, language)."""
    end = i
    while _at(text, end) not in _SPACE and _at(text, end) not in ("`", ""):
        end += 1
    language = ""
    if i != end and end < len(text) and text[end] != "`":
        language, i = text[i:end], end
    first = _at(text, i)
    if first in ("\n", "\r"):
        second = _at(text, i + 1)
        i += 2 if second in ("\n", "\r") and second != first else 1
    return i, language


def parse_markdown(text: str, version: int) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities of ``text`` in Markdown (``version`` 1) or MarkdownV2 (2)."""
    if version == 1:
        return _parse_v1(text)
    return _V2(text).parse()


def _parse_v1(text: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    offset = 0
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and _at(text, i + 1) in ("_", "*", "`", "["):
            out.append(text[i + 1])
            offset += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            offset += _width(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        i += 1
        is_pre = False
        language = ""
        if c == "`" and _at(text, i) == "`" and _at(text, i + 1) == "`":
            is_pre = True
            i, language = _pre_language(text, i + 2)
        start = offset
        content_begin = i
        while i < n and (text[i] != end_char or (
                is_pre and not (_at(text, i + 1) == "`" and _at(text, i + 2) == "`"))):
            out.append(text[i])
            offset += _width(text[i])
            i += 1
        if i == n:
            raise MarkdownError("Can't find end of the entity starting at byte offset "
                                f"{_byte_offset(text, begin)}")
        if offset != start:
            length = offset - start
            entity: dict[str, Any] | None
            if c == "_":
                entity = {"type": "italic", "offset": start, "length": length}
            elif c == "*":
                entity = {"type": "bold", "offset": start, "length": length}
            elif c == "[":
                if _at(text, i + 1) != "(":
                    url = text[content_begin:i]
                else:
                    close = text.find(")", i + 2)
                    close = n if close < 0 else close
                    url, i = text[i + 2:close], close
                entity = _link_entity(url, start, length)
            elif is_pre:
                entity = {"type": "pre", "offset": start, "length": length}
                if language:
                    entity["language"] = language
            else:
                entity = {"type": "code", "offset": start, "length": length}
            if entity is not None:
                entities.append(entity)
        if is_pre:
            i += 2
        i += 1
    return "".join(out), entities


@dataclass(slots=True)
class _Open:
    kind: str
    offset: int
    char_index: int
    begin: int  # index into the output where the entity's text starts
    argument: str = ""


@dataclass
class _V2:
    text: str
    out: list[str] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    stack: list[_Open] = field(default_factory=list)
    offset: int = 0
    quote_open: bool = False
    quote_can_start: bool = True

    def reserved(self, c: str) -> MarkdownError:
        return MarkdownError(f"Character '{c}' is reserved and must be escaped with the "
                             "preceding '\\'")

    def unclosed(self, opened: _Open) -> MarkdownError:
        return MarkdownError(f"Can't find end of {NAMES[opened.kind]} entity at byte offset "
                             f"{_byte_offset(self.text, opened.char_index)}")

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        text = self.text
        i = 0
        while i < len(text):
            i = self.step(i) + 1
        if self.quote_open:
            kind = "blockquote"
            top = self.stack[-1]
            if top.kind == "spoiler" and top.char_index == len(text) - 2:
                self.stack.pop()
                kind = "expandable_blockquote"
            top = self.stack[-1]
            if top.kind == "blockquote":
                if self.offset != top.offset:
                    self.entities.append({"type": kind, "offset": top.offset,
                                          "length": self.offset - top.offset})
                self.stack.pop()
        if self.stack:
            raise self.unclosed(self.stack[-1])
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def step(self, i: int) -> int:
        """Handle ``text[i]``; return the index of the last character consumed."""
        text = self.text
        c = text[i]
        nxt = _at(text, i + 1)
        if c == "\\" and nxt and 0 < ord(nxt) <= 126:
            self.out.append(nxt)
            self.offset += 1
            if nxt != "\r":
                self.quote_can_start = nxt == "\n"
            return i + 1
        in_code = bool(self.stack) and self.stack[-1].kind in ("code", "pre", "pre_code")
        if (c != "`") if in_code else (c not in RESERVED):
            self.out.append(c)
            self.offset += _width(c)
            if c != "\r":
                self.quote_can_start = False
            return i
        if self.ends_entity(i):
            return self.close(i)
        return self.open(i)

    def ends_entity(self, i: int) -> bool:
        if not self.stack:
            return False
        text, c = self.text, self.text[i]
        if self.quote_open and c == "\n" and _at(text, i + 1) != ">":
            return True
        kind = self.stack[-1].kind
        nxt = _at(text, i + 1)
        return {
            "bold": c == "*",
            "italic": c == "_" and nxt != "_",
            "code": c == "`",
            "pre": c == "`" and nxt == "`" and _at(text, i + 2) == "`",
            "pre_code": c == "`" and nxt == "`" and _at(text, i + 2) == "`",
            "text_link": c == "]",
            "underline": c == "_" and nxt == "_",
            "strikethrough": c == "~",
            "spoiler": c == "|" and nxt == "|",
            "custom_emoji": c == "]",
        }.get(kind, False)

    def open(self, i: int) -> int:
        text = self.text
        c = text[i]
        nxt = _at(text, i + 1)
        start = i
        argument = ""
        if c == "_":
            kind = "underline" if nxt == "_" else "italic"
            i += 1 if nxt == "_" else 0
        elif c == "*":
            kind = "bold"
        elif c == "~":
            kind = "strikethrough"
        elif c == "|":
            if nxt != "|":
                raise self.reserved(c)
            kind, i = "spoiler", i + 1
        elif c == "[":
            kind = "text_link"
        elif c == "`":
            if nxt == "`" and _at(text, i + 2) == "`":
                i, argument = _pre_language(text, i + 3)
                kind = "pre_code" if argument else "pre"
                i -= 1
            else:
                kind = "code"
        elif c == "!":
            if nxt != "[":
                raise self.reserved(c)
            kind, i = "custom_emoji", i + 1
        elif c == "\n":
            self.out.append("\n")
            self.offset += 1
            self.quote_can_start = True
            return i
        elif c == ">":
            if not self.quote_can_start:
                raise self.reserved(c)
            if self.quote_open:
                return i
            kind = "blockquote"
            self.quote_open = True
        else:
            raise self.reserved(c)
        self.stack.append(_Open(kind, self.offset, start, len(self.out), argument))
        return i

    def _url(self, i: int) -> tuple[str, int]:
        """The URL in ``(…)`` starting at ``text[i]`` (past the parenthesis); (url, index of
        ``)``)."""
        text = self.text
        begin = i
        url: list[str] = []
        while i < len(text) and text[i] != ")":
            nxt = _at(text, i + 1)
            if text[i] == "\\" and nxt and 0 < ord(nxt) <= 126:
                url.append(nxt)
                i += 2
                continue
            url.append(text[i])
            i += 1
        if _at(text, i) != ")":
            raise MarkdownError(
                f"Can't find end of a URL at byte offset {_byte_offset(text, begin)}")
        return "".join(url), i

    def close(self, i: int) -> int:
        text, c = self.text, self.text[i]
        top = self.stack[-1]
        kind = top.kind
        if c == "\n" and kind != "blockquote":
            spoiler_end = top.char_index == i - 2 or (
                top.char_index == i - 3 and self.out and self.out[-1] == "\r")
            if kind != "spoiler" or not spoiler_end:
                raise self.unclosed(top)
            self.stack.pop()
            top = self.stack[-1]
            if top.kind != "blockquote":
                raise self.unclosed(top)
            kind = "expandable_blockquote"
        skip = self.offset == top.offset
        extra: dict[str, Any] = {}
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind in ("pre", "pre_code"):
            i += 2
        elif kind == "text_link":
            if _at(text, i + 1) != "(":
                url = "".join(self.out[top.begin:])
            else:
                url, i = self._url(i + 2)
            link = _link_entity(url, top.offset, self.offset - top.offset)
            if link is None:
                skip = True
            else:
                extra = link
        elif kind == "custom_emoji":
            if _at(text, i + 1) != "(":
                raise MarkdownError("The entity must contain a tg://emoji or tg://time URL")
            url, i = self._url(i + 2)
            extra = self._emoji_or_time(url)
        elif kind in ("blockquote", "expandable_blockquote"):
            self.quote_open = False
            self.out.append(text[i])
            self.quote_can_start = True
            self.offset += 1
            skip = False
        if not skip:
            entity: dict[str, Any] = {"type": kind, "offset": top.offset,
                                      "length": self.offset - top.offset}
            if kind == "pre_code":
                entity = {"type": "pre", "offset": top.offset, "length": entity["length"],
                          "language": top.argument}
            entity.update({k: v for k, v in extra.items() if k not in ("offset", "length")})
            self.entities.append(entity)
        self.stack.pop()
        return i

    @staticmethod
    def _emoji_or_time(url: str) -> dict[str, Any]:
        m = _EMOJI_LINK.match(url)
        if m and int(m.group(1)) > 0:
            return {"type": "custom_emoji", "custom_emoji_id": m.group(1)}
        m = _TIME_LINK.match(url)
        if m:
            out: dict[str, Any] = {"type": "date_time", "unix_time": int(m.group(1))}
            if m.group(2):
                out["date_time_format"] = m.group(2)
            return out
        raise MarkdownError("Invalid tg://emoji or tg://time URL specified")
