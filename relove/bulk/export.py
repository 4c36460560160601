"""The export service: users out as CSV or JSONL, streamed.

``async for chunk in export_users(engine, ExportOptions(...))`` yields text chunks (the header
first): rows are read through a server-side cursor in id order, a few thousand at a time
(constant memory), inside ONE read transaction (REPEATABLE READ on PostgreSQL), so the
columns found for ``markers.*`` and the rows agree.

Every cell is written so that importing the file reproduces the users exactly (see
:func:`relove.bulk.columns.encode_cell`): a ``markers.<key>[]`` column is used only for keys
whose every value is a non-empty list of text, numbers or booleans; other keys get a
``markers.<key>`` column holding JSON where the text alone would read differently.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Text, cast, func, select, text, true
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from relove.bulk.columns import (
    IDENTITY_FIELDS,
    READ_ONLY_FIELDS,
    encode_cell,
    encode_list,
)
from relove.db.models import User
from relove.errors import FilterError, InvalidInput
from relove.segments.service import plan_with_values, resolve_filter
from relove.users.paths import DOCUMENTS, parse_path

ExportFormat = Literal["csv", "jsonl"]
#: Most ``markers.*`` columns an export flattens; past it, export the JSON column instead.
MAX_FLAT_KEYS = 1000
_MISSING = object()
_SCALARS = ("id", *IDENTITY_FIELDS, *READ_ONLY_FIELDS)


@dataclass(frozen=True, slots=True)
class ExportField:
    """One output column: a users column, a whole document, or a path in one."""

    name: str
    kind: Literal["column", "document", "path"]
    doc: str = ""
    path: tuple[str, ...] = ()
    is_list: bool = False


@dataclass(frozen=True, slots=True)
class ExportOptions:
    format: ExportFormat = "csv"
    #: ``id,first_name,markers.city,markers.tags[],markers.*,context`` … (None: the defaults)
    fields: tuple[str, ...] | None = None
    #: a filter in the segment language
    filter: str | None = None
    delimiter: str = ","
    #: rows per database round trip and per yielded chunk
    chunk_rows: int = 5000

    def __post_init__(self) -> None:
        if self.format not in ("csv", "jsonl"):
            raise InvalidInput(f"unknown format {self.format!r}; expected csv or jsonl")
        if len(self.delimiter) != 1:
            raise InvalidInput(f"the delimiter must be one character, got {self.delimiter!r}")

    def field_names(self) -> tuple[str, ...]:
        if self.fields:
            return self.fields
        docs = ("markers.*", "context") if self.format == "csv" else ("markers", "context")
        return ("id", *IDENTITY_FIELDS, *docs)


def parse_fields(names: tuple[str, ...] | list[str]) -> list[ExportField | str]:
    """Fields checked; ``markers.*`` / ``context.*`` stay as the document name to expand."""
    out: list[ExportField | str] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in seen:
            raise InvalidInput(f"field {name!r} is given twice")
        seen.add(name)
        if name in _SCALARS:
            out.append(ExportField(name, "column"))
        elif name in DOCUMENTS:
            out.append(ExportField(name, "document", doc=name))
        elif name.endswith(".*") and name[:-2] in DOCUMENTS:
            out.append(name[:-2])
        else:
            doc, dot, rest = name.partition(".")
            if not (dot and doc in DOCUMENTS and rest):
                raise InvalidInput(
                    f"unknown field {name!r}; expected id, username, first_name, last_name, "
                    "gender, is_active, created_at, updated_at, last_seen_at, markers, "
                    "markers.*, markers.<key>, markers.<key>[], context, context.*, context.<key>"
                )
            is_list = rest.endswith("[]")
            path = parse_path(rest[:-2] if is_list else rest)
            out.append(ExportField(name, "path", doc=doc, path=path, is_list=is_list))
    if not out:
        raise InvalidInput("no fields to export")
    return out


# -- the database side ---------------------------------------------------------------------------
_T: Any = User.__table__


async def _where(session: AsyncSession, flt: str | None) -> ColumnElement[bool] | None:
    if not flt:
        return None
    where = await resolve_filter(session, flt)
    await plan_with_values(session)
    return where


async def _document_keys(
    session: AsyncSession, doc: str, where: ColumnElement[bool] | None
) -> list[ExportField]:
    """The top-level keys of ``doc`` among the exported users, each as its column."""
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        kv = func.jsonb_each(_T.c[doc]).table_valued("key", "value").alias("k")
        is_list = text(
            "bool_and(CASE WHEN jsonb_typeof(k.value) = 'array' "
            "AND jsonb_array_length(k.value) > 0 THEN NOT EXISTS (SELECT 1 FROM "
            "jsonb_array_elements(k.value) AS e WHERE jsonb_typeof(e) IN ('object', 'array')) "
            "ELSE false END)"
        )
    else:
        kv = func.json_each(_T.c[doc]).table_valued("key", "value", "type").alias("k")
        is_list = text(
            "min(CASE WHEN k.type = 'array' AND json_array_length(k.value) > 0 THEN NOT EXISTS "
            "(SELECT 1 FROM json_each(k.value) AS e WHERE e.type IN ('object', 'array')) "
            "ELSE 0 END)"
        )
    stmt: Select[Any] = (
        select(kv.c.key, is_list).select_from(_T).join(kv, true()).group_by(kv.c.key)
    )
    if where is not None:
        stmt = stmt.where(where)
    rows = (await session.execute(stmt.order_by(kv.c.key).limit(MAX_FLAT_KEYS + 1))).all()
    if len(rows) > MAX_FLAT_KEYS:
        raise InvalidInput(
            f"{doc} has more than {MAX_FLAT_KEYS} different keys: export them as one JSON "
            f"column (--fields …,{doc}) or name the keys you need"
        )
    for key, _ in rows:
        if "." in key or key.endswith("[]"):
            raise InvalidInput(
                f"{doc} key {key[:40]!r} cannot be a column name: export {doc} as one JSON "
                f"column (--fields …,{doc})"
            )
    return [
        ExportField(f"{doc}.{key}{'[]' if flag else ''}", "path", doc=doc, path=(key,),
                    is_list=bool(flag))
        for key, flag in rows
    ]  # fmt: skip


async def _fields(
    session: AsyncSession, options: ExportOptions, where: ColumnElement[bool] | None
) -> list[ExportField]:
    out: list[ExportField] = []
    for item in parse_fields(options.field_names()):
        if isinstance(item, str):
            out.extend(await _document_keys(session, item, where))
        else:
            out.append(item)
    return out


def _select(fields: list[ExportField], where: ColumnElement[bool] | None) -> Select[Any]:
    """The users columns the fields need, in :func:`_layout` order; documents as their JSON
    text (parsed in Python only when a path inside them is exported)."""
    stmt = select(*(_T.c[c] if c in _SCALARS else cast(_T.c[c], Text) for c in _layout(fields)))
    stmt = stmt.order_by(_T.c.id)
    return stmt if where is None else stmt.where(where)


def _layout(fields: list[ExportField]) -> list[str]:
    needed = {"id"} | {f.name for f in fields if f.kind == "column"}
    needed |= {f.doc for f in fields if f.kind != "column"}
    return [c for c in (*_SCALARS, *DOCUMENTS) if c in needed]


# -- rows → text ---------------------------------------------------------------------------------
def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if type(doc) is not dict or key not in doc:
            return _MISSING
        doc = doc[key]
    return doc


def _scalar_cell(name: str) -> Callable[[Any], str]:
    if name == "is_active":
        return lambda v: "true" if v else "false"
    if name == "gender":
        return lambda v: str(getattr(v, "value", v))
    if name in READ_ONLY_FIELDS:
        return lambda v: "" if v is None else v.isoformat()
    return lambda v: "" if v is None else str(v)


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Formatter:
    """Turns result rows (tuples in :func:`_layout` order) into CSV cells or JSONL lines."""

    def __init__(self, fields: list[ExportField]) -> None:
        self.fields = fields
        layout = _layout(fields)
        self.index = {name: i for i, name in enumerate(layout)}
        #: documents parsed per row (a path inside them is exported)
        self.parsed = [self.index[d] for d in DOCUMENTS if any(
            f.kind == "path" and f.doc == d for f in fields)]  # fmt: skip

    def _docs(self, row: Any) -> list[Any]:
        values = list(row)
        for i in self.parsed:
            values[i] = json.loads(values[i])
        return values

    def csv_cells(self) -> Callable[[Any], list[str]]:
        steps: list[Callable[[list[Any]], str]] = []
        for f in self.fields:
            i = self.index[f.name if f.kind == "column" else f.doc]
            if f.kind == "column":
                steps.append(partial(_apply, _scalar_cell(f.name), i))
            elif f.kind == "document":
                steps.append(itemgetter(i))
            else:
                steps.append(partial(_csv_path, i, f.path, f.is_list))
        docs = self._docs
        return lambda row: [step(values) for values in (docs(row),) for step in steps]

    def jsonl_line(self) -> Callable[[Any], str]:
        steps: list[Callable[[list[Any]], str | None]] = []
        for f in self.fields:
            i = self.index[f.name if f.kind == "column" else f.doc]
            key = _encode(f.name) + ":"
            if f.kind == "column":
                steps.append(partial(_keyed, key, partial(_apply, _json_scalar(f.name), i)))
            elif f.kind == "document":
                steps.append(partial(_keyed, key, itemgetter(i)))
            else:
                steps.append(partial(_json_path, key, i, f.path))
        docs = self._docs

        def line(row: Any) -> str:
            values = docs(row)
            parts = [part for step in steps if (part := step(values)) is not None]
            return "{" + ",".join(parts) + "}\n"

        return line


def _apply(cell: Callable[[Any], str], i: int, values: list[Any]) -> str:
    return cell(values[i])


def _keyed(key: str, value: Callable[[list[Any]], str], values: list[Any]) -> str:
    return key + value(values)


def _csv_path(i: int, path: tuple[str, ...], is_list: bool, values: list[Any]) -> str:
    value = _get(values[i], path)
    if value is _MISSING:
        return ""
    if is_list and type(value) is list:
        return encode_list(value)
    return encode_cell(value)


def _json_path(key: str, i: int, path: tuple[str, ...], values: list[Any]) -> str | None:
    value = _get(values[i], path)
    return None if value is _MISSING else key + _encode(value)


def _json_scalar(name: str) -> Callable[[Any], str]:
    if name == "gender":
        return lambda v: _encode(str(getattr(v, "value", v)))
    if name == "is_active":
        return lambda v: "true" if v else "false"
    if name in READ_ONLY_FIELDS:
        return lambda v: "null" if v is None else _encode(v.isoformat())
    return _encode


async def export_users(
    engine: AsyncEngine,
    options: ExportOptions | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """Yield the export as text chunks (the CSV header first); ``progress`` gets the number
    of users written so far after each chunk. Raises :class:`FilterError` /
    :class:`InvalidInput` before the first chunk for a bad filter or field list."""
    options = options or ExportOptions()
    parse_fields(options.field_names())  # bad fields fail before the database is touched
    bind = engine
    if engine.dialect.name == "postgresql":
        bind = engine.execution_options(isolation_level="REPEATABLE READ")
    async with bind.connect() as conn, conn.begin():
        session = AsyncSession(bind=conn)
        try:
            where = await _where(session, options.filter)
            fields = await _fields(session, options, where)
            stmt = _select(fields, where).execution_options(yield_per=options.chunk_rows)
            result = await conn.stream(stmt)
        except DBAPIError as e:
            detail = str(getattr(e, "orig", e)).splitlines()[0]
            raise FilterError(f"the database refused the filter: {detail}") from e
        formatter, rows = _Formatter(fields), 0
        if options.format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, delimiter=options.delimiter, lineterminator="\n")
            writer.writerow([f.name for f in fields])
            cells = formatter.csv_cells()
            async for part in result.partitions():
                writer.writerows(map(cells, part))
                rows += len(part)
                if progress is not None:
                    progress(rows)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            if buffer.tell():
                yield buffer.getvalue()
        else:
            line = formatter.jsonl_line()
            async for part in result.partitions():
                rows += len(part)
                if progress is not None:
                    progress(rows)
                yield "".join(map(line, part))
