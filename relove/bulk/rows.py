"""One record of an import file → one validated :class:`ImportRow`, or a :class:`RowError`.

Every rule here is the marker service's (``relove.users.paths``): key rules, path depth, values
JSON can store, and the documents' size limits; plus the identity columns' own (a positive
64-bit id, text lengths, ``male|female|unknown``). A row that breaks any of them is rejected
whole: nothing of it is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from relove.bulk.columns import (
    IDENTITY_FIELDS,
    TEXT_LIMITS,
    Column,
    ValueType,
    check_document_keys,
    column_for,
    parse_bool,
    parse_json_or_text,
    parse_list,
    parse_typed,
    parse_value,
)
from relove.db.models import CONTEXT_MAX_BYTES, MARKERS_MAX_BYTES, Gender
from relove.errors import ReloveError
from relove.users.paths import Document, to_json

#: The largest Telegram id the ``users.id`` column (BIGINT) holds.
MAX_USER_ID = 2**63 - 1
DOC_LIMITS: dict[str, int] = {"markers": MARKERS_MAX_BYTES, "context": CONTEXT_MAX_BYTES}
#: ``ImportRow.given`` bits: which identity fields the row sets.
GIVEN_BITS = {name: 1 << i for i, name in enumerate(IDENTITY_FIELDS)}
_GENDERS = frozenset(g.value for g in Gender)


_SURROGATE = re.compile("[\ud800-\udfff]")


class RowError(ReloveError):
    """Why a row was rejected (one line, meant for the errors file)."""


class DocChange:
    """What a row writes into one document: ``top`` keys set as given (``||``), then ``deep``
    dotted paths set inside their objects (intermediates become objects). ``json`` is
    ``top`` as JSON text once the row is checked."""

    __slots__ = ("top", "deep", "json")

    def __init__(self) -> None:
        self.top: dict[str, Any] = {}
        self.deep: list[tuple[tuple[str, ...], Any]] = []
        self.json: str | None = None

    def set(self, path: tuple[str, ...], value: Any) -> None:
        head = path[0]
        if len(path) == 1:
            self.top[head] = value
            if self.deep:
                self.deep = [d for d in self.deep if d[0][0] != head]
        elif head in self.top:
            # The row itself set the parent: nest the value into it here.
            node = self.top[head] = _as_object(self.top[head])
            for key in path[1:-1]:
                node = node[key] = _as_object(node.get(key))
            node[path[-1]] = value
        else:
            self.deep.append((path, value))


def _as_object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


@dataclass(slots=True)
class ImportRow:
    """A validated row: identity fields (``given`` says which are set), document changes."""

    line: int
    id: int
    given: int = 0
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    is_active: bool | None = None
    markers: DocChange | None = None
    context: DocChange | None = None

    def doc(self, name: Document) -> DocChange | None:
        return self.markers if name == "markers" else self.context


# -- single fields -------------------------------------------------------------------------------
def parse_id(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise RowError(f"id {value[:30]!r} is not a Telegram user id (a positive integer)")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowError(f"id {str(value)[:30]!r} is not a Telegram user id (a positive integer)")
    if not 0 < value <= MAX_USER_ID:
        raise RowError(f"id {value} is out of range (1 … 2^63-1)")
    return value


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(f"{name} must be text, got {json.dumps(value)[:30]}")
    value = value.strip()
    if name == "username":
        value = value.removeprefix("@")
    if len(value) > TEXT_LIMITS[name]:
        raise RowError(f"{name} is longer than {TEXT_LIMITS[name]} characters")
    _check_text(name, value)
    return value or None


def _check_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise RowError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RowError(f"{name} is not valid text (wrong --encoding?)") from None


def _gender(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in _GENDERS:
        raise RowError(f"gender {str(value)[:20]!r} is not male, female or unknown")
    return text


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_bool(value)
        except ReloveError as e:
            raise RowError(f"{name}: {e}") from None
    raise RowError(f"{name} must be true or false, got {json.dumps(value)[:30]}")


# -- the reader ----------------------------------------------------------------------------------
# -- CSV cells → a row (one step per column, chosen once per header) ---------------------------
_Step = Callable[["ImportRow", Any, str], None]


def _set_id(row: ImportRow, docs: Any, raw: str) -> None:
    row.id = parse_id(raw)


def _set_text(name: str, bit: int, row: ImportRow, docs: Any, raw: str) -> None:
    text = raw.strip()
    if name == "username":
        text = text.removeprefix("@")
    if len(text) > TEXT_LIMITS[name]:
        raise RowError(f"{name} is longer than {TEXT_LIMITS[name]} characters")
    setattr(row, name, text or None)
    row.given |= bit


def _set_gender(row: ImportRow, docs: Any, raw: str) -> None:
    row.gender = _gender(raw)
    row.given |= GIVEN_BITS["gender"]


def _set_active(row: ImportRow, docs: Any, raw: str) -> None:
    row.is_active = _bool("is_active", raw)
    row.given |= GIVEN_BITS["is_active"]


def _set_top(doc: str, key: str, row: ImportRow, docs: dict[str, DocChange], raw: str) -> None:
    docs[doc].top[key] = parse_json_or_text(raw)


def _set_path(col: Column, row: ImportRow, docs: dict[str, DocChange], raw: str) -> None:
    assert col.doc is not None
    try:
        value = parse_list(raw, col.type) if col.is_list else parse_value(raw, col.type)
    except ReloveError as e:
        raise RowError(f"{col.name}: {e}") from None
    docs[col.doc].set(col.path, value)


class RowReader:
    """Builds rows for one file: CSV records against the header's columns
    (:meth:`from_cells`), JSONL objects by their keys (:meth:`from_object`)."""

    def __init__(
        self,
        types: Mapping[tuple[str, tuple[str, ...]], ValueType] | None = None,
        *,
        columns: Sequence[Column] | None = None,
    ) -> None:
        self.types = dict(types or {})
        self.columns = list(columns or [])
        #: the documents the header has columns for (``overwrite`` replaces those)
        self.header_docs = {c.doc for c in self.columns if c.doc is not None}
        self._by_name: dict[str, Column] = {c.name: c for c in self.columns}
        self._width = len(self.columns)
        self._steps = self._plan()

    # CSV ------------------------------------------------------------------------------------------
    def _plan(self) -> list[tuple[int, bool, _Step]]:
        """What to do with each cell: ``(index, even_when_empty, step)``; JSON columns first
        (their keys are then overridden by the row's ``<doc>.<key>`` columns)."""
        plan = []
        for i, col in enumerate(self.columns):
            if col.kind == "id":
                plan.append((i, True, _set_id))
            elif col.kind == "identity" and col.field == "gender":
                plan.append((i, False, _set_gender))
            elif col.kind == "identity" and col.field == "is_active":
                plan.append((i, False, _set_active))
            elif col.kind == "identity":
                plan.append((i, False, partial(_set_text, col.field, GIVEN_BITS[col.field])))
            elif col.kind == "document":
                plan.append((i, False, partial(self._set_document, col)))
            elif col.kind == "path" and len(col.path) == 1 and not col.is_list and not col.type:
                plan.append((i, False, partial(_set_top, str(col.doc), col.path[0])))
            elif col.kind == "path":
                plan.append((i, False, partial(_set_path, col)))
        return sorted(plan, key=lambda step: not isinstance(step[2], partial)
                      or step[2].func != self._set_document)  # fmt: skip

    def _set_document(self, col: Column, row: ImportRow, docs: Any, raw: str) -> None:
        self._document(row, col, _json_object(col.name, raw))

    def from_cells(self, line: int, cells: Sequence[str]) -> ImportRow:
        if len(cells) != self._width:
            raise RowError(f"expected {self._width} fields, got {len(cells)}")
        joined = "\x1f".join(cells)
        if "\x00" in joined:
            raise RowError("the row contains a NUL character")
        if not joined.isascii() and _SURROGATE.search(joined):
            raise RowError("the row is not valid text in its encoding (wrong --encoding?)")
        row = ImportRow(line, 0)
        docs: dict[str, DocChange] = {doc: DocChange() for doc in self.header_docs}
        row.markers, row.context = docs.get("markers"), docs.get("context")
        for i, always, step in self._steps:
            raw = cells[i]
            if raw or always:
                step(row, docs, raw)
        return _checked(row, text_checked=True)

    # JSONL ----------------------------------------------------------------------------------------
    def from_object(self, line: int, obj: Any) -> ImportRow:
        if not isinstance(obj, dict):
            raise RowError("a line must be a JSON object")
        if "id" not in obj:
            raise RowError("the object has no id (the Telegram user id)")
        row = ImportRow(line, parse_id(obj["id"]))
        for name, value in obj.items():
            col = self._column(name)
            if col.kind in ("id", "ignored"):
                continue
            if col.kind == "identity":
                self._identity(row, col.field, value)
            elif col.kind == "document":
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise RowError(f"{name} must be a JSON object")
                self._document(row, col, value)
            else:
                self._path(row, col, self._typed(col, value))
        return _checked(row)

    def _column(self, name: str) -> Column:
        col = self._by_name.get(name)
        if col is None:
            try:
                col = column_for(name, self.types)
            except ReloveError as e:
                raise RowError(str(e)) from None
            if len(self._by_name) < 10_000:
                self._by_name[name] = col
        return col

    def _typed(self, col: Column, value: Any) -> Any:
        try:
            if col.is_list:
                if isinstance(value, str):
                    return parse_list(value, col.type)
                if not isinstance(value, list):
                    raise RowError("expected a list")
                return [_coerce(v, col.type) for v in value]
            return _coerce(value, col.type)
        except ReloveError as e:
            raise RowError(f"{col.name}: {e}") from None

    # shared ---------------------------------------------------------------------------------------
    def _identity(self, row: ImportRow, name: str, value: Any) -> None:
        if name == "gender":
            if value is None:
                return
            row.gender = _gender(value)
        elif name == "is_active":
            if value is None:
                return
            row.is_active = _bool(name, value)
        else:
            setattr(row, name, _text(name, value))
        row.given |= GIVEN_BITS[name]

    def _document(self, row: ImportRow, col: Column, value: dict[str, Any]) -> None:
        assert col.doc is not None
        try:
            check_document_keys(value)
        except ReloveError as e:
            raise RowError(f"{col.name}: {e}") from None
        change = row.doc(col.doc)
        if change is None:
            change = DocChange()
            setattr(row, col.doc, change)
        # The JSON object first; the row's <doc>.<key> columns then override its keys.
        before = change.top
        change.top = dict(value)
        for key, v in before.items():
            change.set((key,), v)

    def _path(self, row: ImportRow, col: Column, value: Any) -> None:
        assert col.doc is not None
        change = row.doc(col.doc)
        if change is None:
            change = DocChange()
            setattr(row, col.doc, change)
        change.set(col.path, value)


def _coerce(value: Any, kind: ValueType | None) -> Any:
    """A JSONL value checked against (or, from text, read as) its ``--types`` type."""
    if kind is None or kind == "json":
        return value
    if isinstance(value, str):
        return parse_typed(value, kind)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "float" and number:
        return value
    if kind == "int" and number and float(value).is_integer():
        return int(value)
    raise RowError(f"{json.dumps(value)[:30]} is not of type {kind}")


def _json_object(name: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        raise RowError(f"{name} is not a JSON object") from None
    if not isinstance(value, dict):
        raise RowError(f"{name} is not a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _checked(row: ImportRow, *, text_checked: bool = False) -> ImportRow:
    """The value rules and size limits on what the row writes (``text_checked``: the row's
    text is known to be encodable, as a CSV row is after :meth:`RowReader.from_cells`)."""
    for doc in ("markers", "context"):
        change: DocChange | None = row.markers if doc == "markers" else row.context
        if change is None:
            continue
        limit = DOC_LIMITS[doc]
        try:
            change.json = text = to_json(change.top)
            size = len(text) if text_checked and len(text) * 4 <= limit else len(
                text.encode("utf-8"))  # fmt: skip
            for path, value in change.deep:
                size += len(to_json(value).encode("utf-8")) + sum(len(k) + 4 for k in path)
        except UnicodeEncodeError:
            raise RowError(f"{doc}: not valid text (wrong --encoding?)") from None
        except ReloveError as e:
            raise RowError(f"{doc}: {e}") from None
        if size > limit:
            raise RowError(f"{doc} would exceed its size limit ({limit // 1024} KiB)")
    return row
