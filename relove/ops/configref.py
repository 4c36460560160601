"""The configuration reference (docs/configuration.md), generated from :class:`~relove.config.
Settings`: every ``RELOVE_*`` variable with its default, its bounds and the comment written
above it in relove/config.py, grouped by the section comments there.

    python -m relove.ops.configref > docs/configuration.md     # regenerate
    python -m relove.ops.configref --check docs/configuration.md  # exit 1 when it drifted

tests/ops/test_configref.py fails when the file and the class disagree.
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from relove.config import Settings

_SECTION = re.compile(r"^\s*# -+ (.+?) -*$")
_DOC = re.compile(r"^\s*#: ?(.*)$")
_FIELD = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:")

HEADER = """\
# Configuration reference

Every setting of relove is an environment variable `RELOVE_<NAME>` (or a line in a `.env` file
in the working directory). A bad value stops any command at start-up with one line naming the
variable. Lists are comma-separated (`RELOVE_ADMIN_IDS=1234,5678`); booleans are `true`/`false`.

This file is generated from the `Settings` class (relove/config.py) — do not edit it by hand:

<!-- runnable -->
```sh
python -m relove.ops.configref > docs/configuration.md
```

A test fails when it and the class disagree. Production topology and operations:
deploy/README.md and [operations.md](operations.md).
"""


@dataclass
class Entry:
    name: str
    doc: str = ""


@dataclass
class Section:
    title: str
    entries: list[Entry] = field(default_factory=list)


def _sections() -> list[Section]:
    """The fields in source order, with their section and ``#:`` comments."""
    sections = [Section("general")]
    doc: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        if m := _SECTION.match(line):
            sections.append(Section(m.group(1).strip()))
            doc = []
        elif m := _DOC.match(line):
            doc.append(m.group(1).strip())
        elif (m := _FIELD.match(line)) and m.group(1) in Settings.model_fields:
            sections[-1].entries.append(Entry(m.group(1), " ".join(doc)))
            doc = []
        elif not line.strip().startswith("#") and line.strip():
            doc = []
    listed = {e.name for s in sections for e in s.entries}
    missing = [n for n in Settings.model_fields if n not in listed]
    if missing:  # a field declared in a way the scan does not see: still documented
        sections.append(Section("other", [Entry(n) for n in missing]))
    return [s for s in sections if s.entries]


def _default(name: str) -> str:
    info = Settings.model_fields[name]
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{','.join(map(str, value))}`" if value else "(empty)"
    return f"`{value}`"


def _bounds(name: str) -> str:
    info = Settings.model_fields[name]
    parts = []
    for meta in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound:g}" if isinstance(bound, float) else f"{sign} {bound}")
    annotation = str(info.annotation)
    if "Literal[" in annotation:
        parts.append(" / ".join(f"`{v}`" for v in re.findall(r"'([^']*)'", annotation)))
    if "SecretStr" in annotation:
        parts.append("secret")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("``", "`").replace("|", "\\|").replace("\n", " ")


def render() -> str:
    out = [HEADER]
    for section in _sections():
        out.append(f"\n## {section.title[:1].upper()}{section.title[1:]}\n")
        out.append("| Variable | Default | Allowed | Meaning |")
        out.append("| --- | --- | --- | --- |")
        for e in section.entries:
            out.append(f"| `RELOVE_{e.name.upper()}` | {_cell(_default(e.name))} | "
                       f"{_cell(_bounds(e.name))} | {_cell(e.doc)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[:1] == ["--check"] and len(argv) == 2:
        current = Path(argv[1]).read_text(encoding="utf-8") if Path(argv[1]).exists() else ""
        if current != text:
            sys.stderr.write(f"{argv[1]} is out of date: python -m relove.ops.configref > "
                             f"{argv[1]}\n")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
