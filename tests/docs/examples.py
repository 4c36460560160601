"""Find the runnable examples in README.md and docs/ (the convention is in docs/development.md).

A fenced block is runnable when the line just before its fence is an HTML comment (invisible on
GitHub):

* ``<!-- runnable -->`` — a ``sh`` block runs with ``bash -euo pipefail``, a ``python`` block with
  the venv's Python, in a fresh directory on a fresh SQLite database with the demo users;
* ``<!-- runnable: serve -->`` — also with ``relove serve`` running: ``$API`` is its
  ``/api/v1`` address and ``$T`` an admin token; the database is the server's;
* ``<!-- runnable: sandbox -->`` — also with the sandbox Bot API running and the bot's token,
  ``RELOVE_TELEGRAM_API_URL`` and ``RELOVE_ADMIN_IDS`` set;
* ``<!-- file: NAME -->`` before any fenced block writes that block as ``NAME`` into the
  directory of every runnable block of the same page (a sample CSV the commands import).
  ``<!-- file: NAME encoding=cp1251 -->`` writes it in that encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*runnable(?::\s*(?P<needs>[a-z, ]+))?\s*-->\s*$")
FILE = re.compile(
    r"^\s*<!--\s*file:\s*(?P<name>[\w.-]+)(?:\s+encoding=(?P<encoding>[\w-]+))?\s*-->\s*$"
)
NEEDS = {"serve", "sandbox"}
LANGS = {"sh": "sh", "bash": "sh", "console": "sh", "python": "python", "py": "python"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str  # the fence's info string, first word
    code: str
    runnable: bool
    needs: frozenset[str]
    file_name: str | None  # set by <!-- file: NAME -->
    file_encoding: str = "utf-8"  # <!-- file: NAME encoding=cp1251 -->

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = lines[i - 1] if i else ""
        marker, file_ = MARKER.match(before), FILE.match(before)
        needs = frozenset(
            n.strip() for n in (marker["needs"] or "").split(",") if n.strip()
        ) if marker else frozenset()
        unknown = needs - NEEDS
        if unknown:
            raise ValueError(f"{page}:{i + 1}: unknown runnable needs {sorted(unknown)}")
        found.append(Block(page, i + 1, (opening["info"].split() or [""])[0], code,
                           marker is not None, needs, file_["name"] if file_ else None,
                           (file_ and file_["encoding"]) or "utf-8"))
        i = end + 1
    return found


def runnable_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.runnable]


def example_files(page: Path) -> dict[str, bytes]:
    """The ``<!-- file: NAME -->`` blocks of a page: NAME → contents (a name once per page)."""
    files: dict[str, bytes] = {}
    for b in blocks(page):
        if b.file_name:
            if b.file_name in files:
                raise ValueError(f"{b.id}: a second <!-- file: {b.file_name} -->")
            files[b.file_name] = b.code.encode(b.file_encoding)
    return files
