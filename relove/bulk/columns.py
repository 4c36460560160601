"""Columns of an import file and how a cell becomes a value.

A column is one of ``id``, ``username``, ``first_name``, ``last_name``, ``gender``,
``is_active``; ``markers`` / ``context`` (a JSON object); ``markers.<path>`` /
``context.<path>`` (one value) or ``markers.<path>[]`` / ``context.<path>[]`` (a list, items
separated by ``|``). ``created_at``, ``updated_at`` and ``last_seen_at`` (written by the export)
are read-only and ignored.

A cell's text is parsed as JSON when it parses (``42``, ``true``, ``["a"]``, ``"007"``), else
kept as text — unless ``--types`` names the column's type. The export writes every value so
that this rule reads it back exactly (see :func:`encode_cell`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relove.errors import InvalidInput
from relove.users.paths import DOCUMENTS, Document, check_key, parse_path

ValueType = Literal["str", "int", "float", "bool", "json"]
VALUE_TYPES: tuple[ValueType, ...] = ("str", "int", "float", "bool", "json")

IDENTITY_FIELDS = ("username", "first_name", "last_name", "gender", "is_active")
#: Written by the export, ignored by the import (the database keeps its own).
READ_ONLY_FIELDS = ("created_at", "updated_at", "last_seen_at")
#: Longest text per identity column (the columns' sizes; the same rule on both databases).
TEXT_LIMITS = {"username": 64, "first_name": 256, "last_name": 256}

LIST_SEPARATOR = "|"

Kind = Literal["id", "identity", "document", "path", "ignored"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the file: what it writes (``kind``) and where."""

    name: str
    kind: Kind
    field: str = ""  # identity: the users column
    doc: Document | None = None  # document / path columns
    path: tuple[str, ...] = ()  # path columns
    is_list: bool = False
    type: ValueType | None = None


def column_for(
    name: str, types: Mapping[tuple[str, tuple[str, ...]], ValueType] | None = None
) -> Column:
    """The column a header name (or a JSONL key) stands for."""
    types = types or {}
    if name == "id":
        return Column(name, "id")
    if name in IDENTITY_FIELDS:
        return Column(name, "identity", field=name)
    if name in READ_ONLY_FIELDS:
        return Column(name, "ignored")
    if name in DOCUMENTS:
        return Column(name, "document", doc=name)
    doc, dot, rest = name.partition(".")
    if dot and doc in DOCUMENTS and rest:
        is_list = rest.endswith("[]")
        path = parse_path(rest[:-2] if is_list else rest)
        return Column(
            name, "path", doc=doc, path=path, is_list=is_list,
            type=types.get((doc, path)),
        )  # fmt: skip
    raise InvalidInput(
        f"unknown column {name!r}; expected id, username, first_name, last_name, gender, "
        "is_active, markers, markers.<key>, markers.<key>[], context or context.<key>"
    )


def parse_columns(
    names: Iterable[str], types: Mapping[tuple[str, tuple[str, ...]], ValueType] | None = None
) -> list[Column]:
    """The columns of a header, checked: ``id`` present, no duplicates, no path that is also
    the parent of another (``markers.profile`` with ``markers.profile.city``)."""
    columns: list[Column] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            raise InvalidInput("the header has an empty column name")
        if name in seen:
            raise InvalidInput(f"column {name!r} appears twice in the header")
        seen.add(name)
        columns.append(column_for(name, types))
    if "id" not in seen:
        raise InvalidInput("the file has no id column (the Telegram user id)")
    _check_overlaps(columns)
    return columns


def _check_overlaps(columns: list[Column]) -> None:
    paths: dict[tuple[str, tuple[str, ...]], str] = {}
    for col in columns:
        if col.kind == "path":
            assert col.doc is not None
            key = (col.doc, col.path)
            if key in paths:
                raise InvalidInput(f"columns {paths[key]!r} and {col.name!r} write the same key")
            paths[key] = col.name
    for (doc, path), name in paths.items():
        for i in range(1, len(path)):
            parent = paths.get((doc, path[:i]))
            if parent is not None:
                raise InvalidInput(f"columns {parent!r} and {name!r} overlap")


def parse_types(items: Iterable[str]) -> dict[tuple[str, tuple[str, ...]], ValueType]:
    """``["score=int", "context.age=int"]`` → ``{("markers", ("score",)): "int", …}``; a name
    without ``markers.`` / ``context.`` means a marker; ``[]`` is optional."""
    out: dict[tuple[str, tuple[str, ...]], ValueType] = {}
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            name, eq, kind = part.partition("=")
            name, kind = name.strip().removesuffix("[]"), kind.strip().lower()
            if not eq or not name:
                raise InvalidInput(f"--types expects key=type, got {part!r}")
            if kind not in VALUE_TYPES:
                raise InvalidInput(
                    f"unknown type {kind!r} for {name!r}; expected {', '.join(VALUE_TYPES)}"
                )
            doc, dot, rest = name.partition(".")
            if dot and doc in DOCUMENTS:
                out[(doc, parse_path(rest))] = kind
            else:
                out[("markers", parse_path(name))] = kind
    return out


# -- cells → values ------------------------------------------------------------------------------
def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


_JSON_START = frozenset('{["-0123456789tfn \t\r\n')
_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def parse_json_or_text(raw: str) -> Any:
    """JSON when the text parses as JSON (NaN and Infinity do not), else the text itself."""
    if not raw:
        return raw
    first = raw[0]
    if first in "tfn":
        return _CONSTANTS.get(raw, raw)
    if first in "-0123456789":
        # JSON's number grammar, without the decoder (the common case)
        number = _NUMBER.fullmatch(raw)
        if number is None:
            return raw
        return int(raw) if number.lastindex is None else float(raw)
    if first not in _JSON_START:
        return raw
    try:
        return _decoder.decode(raw)
    except ValueError:
        return raw


_INT = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "yes", "y", "да"})
_FALSE = frozenset({"false", "0", "no", "n", "нет"})


def parse_bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"{raw[:40]!r} is not a boolean (true/false, 1/0, yes/no)")


def parse_typed(raw: str, kind: ValueType) -> Any:
    """A cell read as ``kind`` (``str`` keeps the text exactly)."""
    if kind == "str":
        return raw
    if kind == "json":
        try:
            return _decoder.decode(raw)
        except ValueError:
            raise InvalidInput(f"{raw[:40]!r} is not JSON") from None
    if kind == "bool":
        return parse_bool(raw)
    text = raw.strip()
    if kind == "int":
        if not _INT.fullmatch(text):
            raise InvalidInput(f"{raw[:40]!r} is not an integer")
        return int(text)
    try:
        value = float(text.replace(",", ".") if "." not in text else text)
    except ValueError:
        raise InvalidInput(f"{raw[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{raw[:40]!r} is not a finite number")
    return value


def parse_value(raw: str, kind: ValueType | None) -> Any:
    return parse_json_or_text(raw) if kind is None else parse_typed(raw, kind)


def split_list(raw: str) -> list[str]:
    """``a|b|"c|d"`` → ``["a", "b", '"c|d"']``: items separated by ``|``; an item written as a
    JSON string (``"…"``) may contain ``|``."""
    items: list[str] = []
    i, n = 0, len(raw)
    while True:
        if i < n and raw[i] == '"':
            try:
                _, end = _decoder.raw_decode(raw, i)
            except ValueError:
                end = -1
            if end == n or (end > 0 and raw[end] == LIST_SEPARATOR):
                items.append(raw[i:end])
                if end == n:
                    return items
                i = end + 1
                continue
        j = raw.find(LIST_SEPARATOR, i)
        if j < 0:
            items.append(raw[i:])
            return items
        items.append(raw[i:j])
        i = j + 1


def parse_list(raw: str, kind: ValueType | None) -> list[Any]:
    items = raw.split(LIST_SEPARATOR) if '"' not in raw else split_list(raw)
    if kind is None:
        return [parse_json_or_text(item) for item in items]
    return [parse_typed(item, kind) for item in items]


# -- values → cells (the export) -----------------------------------------------------------------
_dump = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def encode_cell(value: Any) -> str:
    """The cell text that :func:`parse_json_or_text` reads back as ``value`` exactly: text as
    it is unless it would read as JSON (``"42"``, ``""``), everything else as JSON."""
    kind = type(value)
    if kind is str:
        if value and parse_json_or_text(value) is value:
            return value
        return _dump(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    return _dump(value)


def encode_list(items: list[Any]) -> str:
    """A ``markers.<key>[]`` cell that :func:`parse_list` reads back as ``items``."""
    out = []
    for item in items:
        if type(item) is str and (LIST_SEPARATOR in item or item.startswith('"')):
            out.append(_dump(item))
        else:
            out.append(encode_cell(item))
    return LIST_SEPARATOR.join(out)


def check_document_keys(doc: Mapping[str, Any]) -> None:
    """Every top-level key of a ``markers`` / ``context`` JSON cell follows the key rules, and
    has no ``.`` (the marker service and the segment language read a dot as a path)."""
    for key in doc:
        check_key(key)
        if "." in key:
            raise InvalidInput(f"key {key[:40]!r} contains '.'; nest objects instead")
