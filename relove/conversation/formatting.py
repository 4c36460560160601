"""LLM output → Telegram HTML that always parses, split into messages Telegram accepts.

Models answer in Markdown (or plain text, or stray HTML). Everything is escaped first; then a
small Markdown subset becomes Telegram tags (bold, italic, strike, inline code, code blocks,
links with http(s) URLs, headings as bold). Each tag is produced whole from one regex match on
already-escaped text, so the output is balanced by construction — never a 400 for bad markup.

Long answers are cut on paragraph boundaries (then lines, then words) into parts of at most
``limit`` UTF-16 code units of HTML. Telegram's limit is 4096 UTF-16 code units of the visible
text (an emoji such as 😀 counts 2); counting the HTML in the same units is stricter (tags and
entities only add), so a part is always accepted.
"""

from __future__ import annotations

import html
import re

from relove.telegram.limits import TEXT_LIMIT, utf16_len

_FENCE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|\Z)", re.S)
_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|\[(?P<ltext>[^\]\n]+)\]\((?P<url>https?://[^\s)]+)\)"
    r"|\*\*(?P<bold>[^\n*][^\n]*?)\*\*"
    r"|__(?P<bold2>[^\n_][^\n]*?)__"
    r"|~~(?P<strike>[^\n~][^\n]*?)~~"
    r"|(?<![\w*])\*(?P<ital>[^\s*][^\n*]*?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<ital2>[^\s_][^\n_]*?)_(?![\w_])"
)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def _inline(raw: str) -> str:
    """One line or paragraph of Markdown → HTML (raw is NOT escaped yet)."""
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(raw):
        out.append(escape(raw[pos : m.start()]))
        pos = m.end()
        if m.group("code"):
            out.append(f"<code>{escape(m.group('code')[1:-1])}</code>")
        elif m.group("url"):
            url = html.escape(m.group("url"), quote=True)
            out.append(f'<a href="{url}">{_inline(m.group("ltext"))}</a>')
        elif m.group("bold") is not None or m.group("bold2") is not None:
            out.append(f"<b>{_inline(m.group('bold') or m.group('bold2'))}</b>")
        elif m.group("strike") is not None:
            out.append(f"<s>{_inline(m.group('strike'))}</s>")
        else:
            out.append(f"<i>{_inline(m.group('ital') or m.group('ital2'))}</i>")
    out.append(escape(raw[pos:]))
    return "".join(out)


def _paragraph(raw: str) -> str:
    lines = []
    for line in raw.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            lines.append(f"<b>{_inline(heading.group(1))}</b>")
            continue
        line = _BULLET.sub(lambda m: m.group(1) + "• ", line)
        lines.append(_inline(line))
    return "\n".join(lines)


def _blocks(text: str) -> list[tuple[str, str]]:
    """Split Markdown into ("code", body) and ("text", paragraph) blocks."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    for m in _FENCE.finditer(text):
        blocks.extend(("text", p) for p in _paragraphs(text[pos : m.start()]))
        body = m.group(1).rstrip("\n")
        if body.strip():
            blocks.append(("code", body))
        pos = m.end()
    blocks.extend(("text", p) for p in _paragraphs(text[pos:]))
    return blocks


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def to_html(text: str) -> str:
    """The whole answer as one HTML string (may be longer than one message)."""
    return "\n\n".join(_render(kind, body) for kind, body in _blocks(_normalise(text)))


def _render(kind: str, body: str) -> str:
    return f"<pre>{escape(body)}</pre>" if kind == "code" else _paragraph(body)


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Control characters other than newline/tab make Telegram reject a message.
    return "".join(ch for ch in text if ch in "\n\t" or ch >= " " or ch == "\u200b")


def split_html(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Markdown/plain answer → HTML parts, each at most ``limit`` UTF-16 code units of HTML
    (the visible text plus tag and entity overhead, so always within Telegram's limit on the
    visible text), split between paragraphs where possible; an oversized paragraph is split on
    lines, then words, as plain escaped text (its formatting is dropped rather than broken)."""
    parts: list[str] = []
    current, current_size = "", 0
    for kind, body in _blocks(_normalise(text)):
        rendered = _render(kind, body)
        n = utf16_len(rendered)
        pieces = [(rendered, n)] if n <= limit else _split_oversized(kind, body, limit)
        for piece, piece_size in pieces:
            if not current:
                current, current_size = piece, piece_size
            elif current_size + 2 + piece_size <= limit:
                current += "\n\n" + piece
                current_size += 2 + piece_size
            else:
                parts.append(current)
                current, current_size = piece, piece_size
    if current:
        parts.append(current)
    return parts


def _split_oversized(kind: str, body: str, limit: int) -> list[tuple[str, int]]:
    wrap = ("<pre>", "</pre>") if kind == "code" else ("", "")
    overhead = len(wrap[0]) + len(wrap[1])
    room = limit - overhead
    chunks: list[tuple[str, int]] = []
    current, current_size = "", 0
    for unit, unit_size in _units(body, room):
        sep = "\n" if current and not current.endswith("\n") else ""
        if not current:
            current, current_size = unit, unit_size
        elif current_size + len(sep) + unit_size <= room:
            current += sep + unit
            current_size += len(sep) + unit_size
        else:
            chunks.append((current, current_size))
            current, current_size = unit, unit_size
    if current:
        chunks.append((current, current_size))
    return [(wrap[0] + c + wrap[1], n + overhead) for c, n in chunks]


def _cut(word: str, room: int) -> int:
    """How many characters of escaped ``word`` fit in ``room`` UTF-16 units, never cutting
    inside an entity (``&amp;``); at least one character, so splitting always progresses."""
    used = 0
    cut = 0
    for ch in word:
        used += utf16_len(ch)
        if used > room:
            break
        cut += 1
    cut = max(cut, 1)
    amp = word.rfind("&", 0, cut)
    if amp > 0 and word.find(";", amp) >= cut:
        cut = amp
    return cut


def _units(body: str, room: int) -> list[tuple[str, int]]:
    """Escaped lines of ``body`` with their sizes, each at most ``room`` UTF-16 units (split on
    spaces, then hard)."""
    units: list[tuple[str, int]] = []
    for line in body.split("\n"):
        escaped = escape(line)
        n = utf16_len(escaped)
        if n <= room:
            units.append((escaped, n))
            continue
        current, current_size = "", 0
        for word in line.split(" "):
            w = escape(word)
            w_size = utf16_len(w)
            while w_size > room:  # one huge "word": cut, never inside an entity
                cut = _cut(w, room)
                head = w[:cut]
                units.append((head, utf16_len(head)))
                w = w[cut:]
                w_size = utf16_len(w)
            if not current:
                current, current_size = w, w_size
            elif current_size + 1 + w_size <= room:
                current += " " + w
                current_size += 1 + w_size
            else:
                units.append((current, current_size))
                current, current_size = w, w_size
        if current:
            units.append((current, current_size))
    return units
