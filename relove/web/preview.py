"""A rendered Telegram message shown in the console as Telegram would show it.

The message's Telegram HTML is parsed into plain text and entities (the same rules Telegram
applies), and the page's HTML is built from those: text escaped, a fixed set of tags, links only
to http(s)/tg. The operator's markup never reaches the page as markup."""

from __future__ import annotations

import html
from typing import Any

from markupsafe import Markup

from relove.errors import InvalidInput
from relove.telegram.html import EntityParseError, parse_html

_TAGS = {
    "bold": ("<b>", "</b>"), "italic": ("<i>", "</i>"), "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"), "spoiler": ('<span class="spoiler">', "</span>"),
    "code": ("<code>", "</code>"), "pre": ("<pre>", "</pre>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ("<blockquote>", "</blockquote>"),
}
_SAFE_SCHEMES = ("http://", "https://", "tg://")


def _open(entity: dict[str, Any]) -> tuple[str, str]:
    kind = entity.get("type")
    if kind == "text_link":
        url = str(entity.get("url", ""))
        if url.lower().startswith(_SAFE_SCHEMES):
            return (f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer" '
                    'target="_blank">', "</a>")
        return "<span>", "</span>"
    return _TAGS.get(str(kind), ("<span>", "</span>"))


def telegram_html(text: str) -> Markup:
    """Safe page HTML for a Telegram-HTML message text."""
    try:
        plain, entities = parse_html(text)
    except EntityParseError as e:
        raise InvalidInput(f"the message is not valid Telegram HTML: {e}") from e
    units = plain.encode("utf-16-le")
    starts: dict[int, list[dict[str, Any]]] = {}
    ends: set[int] = set()
    for entity in entities:
        starts.setdefault(entity["offset"], []).append(entity)
        ends.add(entity["offset"] + entity["length"])
    bounds = sorted({0, len(units) // 2, *starts, *ends})
    out: list[str] = []
    stack: list[tuple[int, str]] = []  # (end offset, closing tag)
    for i, pos in enumerate(bounds):
        while stack and stack[-1][0] <= pos:
            out.append(stack.pop()[1])
        for entity in sorted(starts.get(pos, []), key=lambda ent: -ent["length"]):
            opening, closing = _open(entity)
            out.append(opening)
            stack.append((entity["offset"] + entity["length"], closing))
        if i + 1 < len(bounds):
            chunk = units[pos * 2: bounds[i + 1] * 2].decode("utf-16-le", "replace")
            out.append(html.escape(chunk, quote=False))
    while stack:
        out.append(stack.pop()[1])
    return Markup("".join(out))  # noqa: S704 - built from escaped text and fixed tags above
