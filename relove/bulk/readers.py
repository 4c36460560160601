"""Import files as a stream of rows: CSV (any encoding, with or without a BOM) and JSONL.

A source reads its file once, front to back, holding one record at a time (constant memory),
and yields ``(line, ImportRow | RowError, raw)`` — the line number where the record starts,
the validated row or why it is rejected, and the record's original fields for the errors file.
Bytes that are not valid in the file's encoding reject only their own row.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

from relove.bulk.columns import ValueType, parse_columns
from relove.bulk.rows import ImportRow, RowError, RowReader
from relove.errors import InvalidInput, ReloveError

Format = Literal["csv", "jsonl"]
Record = tuple[int, ImportRow | RowError, list[str]]

#: Delimiters tried on the header line when none is given (Excel in Russian writes ``;``).
DELIMITERS = (",", ";", "\t", "|")
# A cell may hold a whole context document (≤ 256 KiB); larger ones are rejected by size.
csv.field_size_limit(16 * 1024 * 1024)


class _Counting(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for progress)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InvalidInput(f"unknown encoding {name!r} (e.g. utf-8, cp1251, utf-16)") from None


def detect_encoding(head: bytes, given: str | None) -> tuple[str, int]:
    """The codec to read a file with, and how many BOM bytes to skip. A BOM decides when no
    encoding is given; a BOM that contradicts the given encoding is an error."""
    boms = (
        (codecs.BOM_UTF8, "utf-8", 3),
        (codecs.BOM_UTF16_LE, "utf-16", 0),
        (codecs.BOM_UTF16_BE, "utf-16", 0),
    )
    for bom, codec, skip in boms:
        if head.startswith(bom):
            if given is not None and not _codec(given).startswith(codec.replace("-", "_")):
                raise InvalidInput(
                    f"the file starts with a {codec.upper()} byte order mark but the encoding "
                    f"{given!r} was given; drop --encoding"
                )
            return codec, skip
    return (_codec(given) if given else "utf-8"), 0


class Source:
    """The common part of the CSV and JSONL sources."""

    format: Format
    encoding: str
    #: the columns of the errors file after ``line`` and ``reason``
    errors_header: list[str]
    #: columns the import ignores (read-only fields of an export)
    ignored: list[str]

    def __init__(self, stream: IO[bytes], size: int | None, encoding: str | None) -> None:
        self.bytes_total = size
        self._counting = _Counting(stream)
        buffered = io.BufferedReader(self._counting, buffer_size=1 << 16)
        self.encoding, skip = detect_encoding(buffered.peek(4)[:4], encoding)
        #: whether the file starts with a byte order mark (the errors file gets one too)
        self.bom = skip > 0 or self.encoding == "utf-16"
        buffered.read(skip)
        self._buffered = buffered
        self.ignored = []

    @property
    def bytes_read(self) -> int:
        return self._counting.count

    def records(self) -> Iterator[Record]:
        raise NotImplementedError


class CsvSource(Source):
    format: Format = "csv"

    def __init__(
        self,
        stream: IO[bytes],
        *,
        size: int | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        types: Mapping[tuple[str, tuple[str, ...]], ValueType] | None = None,
    ) -> None:
        super().__init__(stream, size, encoding)
        self._text = io.TextIOWrapper(
            self._buffered, encoding=self.encoding, errors="surrogateescape", newline=""
        )
        first = self._text.readline()
        if not first.strip():
            raise InvalidInput("the file is empty (expected a header line)")
        if delimiter is not None and len(delimiter) != 1:
            raise InvalidInput(f"the delimiter must be one character, got {delimiter!r}")
        self.delimiter = delimiter or _sniff(first)
        header = next(csv.reader([first], delimiter=self.delimiter))
        if any("\udc80" <= ch <= "\udcff" for name in header for ch in name):
            raise InvalidInput(f"the header is not valid {self.encoding}; pass --encoding")
        self.columns = parse_columns(header, types)
        if types:
            known = {(c.doc, c.path) for c in self.columns if c.kind == "path"}
            unknown = [k for k in types if k not in known]
            if unknown:
                doc, path = unknown[0]
                raise InvalidInput(f"--types names {doc}.{'.'.join(path)}, not a column here")
        self.ignored = [c.name for c in self.columns if c.kind == "ignored"]
        self.errors_header = [c.name for c in self.columns]
        self._reader = RowReader(types, columns=self.columns)

    def records(self) -> Iterator[Record]:
        reader = csv.reader(self._text, delimiter=self.delimiter)
        build = self._reader.from_cells
        last = 1  # the header line
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                line = last + 1
                last = reader.line_num + 1
                yield line, RowError(f"not valid CSV: {e}"), []
                continue
            line, last = last + 1, reader.line_num + 1
            if not cells:
                continue  # a blank line
            try:
                yield line, build(line, cells), cells
            except ReloveError as e:
                yield line, e if isinstance(e, RowError) else RowError(str(e)), cells


def _sniff(header_line: str) -> str:
    """The delimiter that splits the header into the most columns, one of them ``id``."""
    best, best_count = ",", 0
    for delimiter in DELIMITERS:
        names = next(csv.reader([header_line], delimiter=delimiter))
        if "id" in (n.strip() for n in names) and len(names) > best_count:
            best, best_count = delimiter, len(names)
    return best


class JsonlSource(Source):
    """One JSON object per line; blank lines are skipped."""

    format: Format = "jsonl"

    def __init__(
        self,
        stream: IO[bytes],
        *,
        size: int | None = None,
        encoding: str | None = None,
        types: Mapping[tuple[str, tuple[str, ...]], ValueType] | None = None,
    ) -> None:
        super().__init__(stream, size, encoding)
        self.errors_header = ["record"]
        self._reader = RowReader(types)
        self._text = io.TextIOWrapper(
            self._buffered, encoding=self.encoding, errors="surrogateescape", newline=""
        )

    def records(self) -> Iterator[Record]:
        build = self._reader.from_object
        for line, text in enumerate(self._text, start=1):
            if not text.strip():
                continue
            raw = [text.rstrip("\r\n")]
            try:
                obj = json.loads(text, parse_constant=_refuse)
            except ValueError as e:
                yield line, RowError(f"not valid JSON: {e}"), raw
                continue
            try:
                yield line, build(line, obj), raw
            except ReloveError as e:
                yield line, e if isinstance(e, RowError) else RowError(str(e)), raw


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def guess_format(name: str) -> Format:
    return "jsonl" if Path(name).suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def open_source(
    stream: IO[bytes],
    *,
    format: Format = "csv",
    size: int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    types: Mapping[tuple[str, tuple[str, ...]], ValueType] | None = None,
) -> Source:
    """A source over a binary stream (an open file, an upload). Raises :class:`InvalidInput`
    with one line for a bad header, encoding or option — before anything is written."""
    if format == "jsonl":
        if delimiter is not None:
            raise InvalidInput("--delimiter applies to CSV files only")
        return JsonlSource(stream, size=size, encoding=encoding, types=types)
    if format != "csv":
        raise InvalidInput(f"unknown format {format!r}; expected csv or jsonl")
    return CsvSource(stream, size=size, encoding=encoding, delimiter=delimiter, types=types)
