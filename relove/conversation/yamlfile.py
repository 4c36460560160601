"""YAML loading that remembers line numbers, so a broken file is reported as ``file:line: reason``.

:func:`load_yaml` returns plain dicts/lists (``LineDict`` / ``LineList`` subclasses carrying the
line of every key and item); :func:`line_of` walks a pydantic error location back to its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from relove.errors import InvalidInput


class DefinitionError(InvalidInput):
    """A scenario or catalog file that cannot be used; the text names the line and the reason."""

    def __init__(self, message: str, *, line: int | None = None, source: str = "") -> None:
        where = f"{source}:{line}" if source and line else (f"line {line}" if line else source)
        super().__init__(f"{where}: {message}" if where else message)
        self.line = line
        self.reason = message


class LineDict(dict):
    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise DefinitionError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, source: str = "") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except DefinitionError as e:
        raise DefinitionError(e.reason, line=e.line, source=source) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = e.problem or str(e)
        raise DefinitionError(
            f"invalid YAML: {reason}", line=mark.line + 1 if mark else None, source=source
        ) from None
    except yaml.YAMLError as e:
        raise DefinitionError(f"invalid YAML: {e}", source=source) from None


def read_yaml_file(path: Path) -> tuple[Any, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DefinitionError(f"cannot read the file: {e}", source=str(path)) from None
    return load_yaml(text, str(path)), str(path)


def line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest node a pydantic location reaches."""
    line = getattr(data, "line", None) or None
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            line = node.key_lines.get(part, line) if isinstance(node, LineDict) else line
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            if isinstance(node, LineList):
                line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def validate(model: type[BaseModel], data: Any, source: str) -> Any:
    """``model.model_validate(data)`` with the first error turned into a line-numbered
    :class:`DefinitionError`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if msg.startswith("@"):  # a model-level check naming a sub-location: "@steps.2.id: …"
            sub, _, msg = msg[1:].partition(": ")
            loc += tuple(int(p) if p.isdigit() else p for p in sub.split("."))
        where = ".".join(str(p) for p in loc)
        reason = f"{where}: {msg}" if where else msg
        raise DefinitionError(reason, line=line_of(data, loc), source=source) from None
