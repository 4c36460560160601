"""CSV export from the console: the bulk room's export (``relove users export``: streamed, a
``markers.<key>`` column per key), made safe to open in a spreadsheet — a cell that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR at the start, and not
a plain number) gets a leading apostrophe. Hostile names are common in open communities."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bulk.export import ExportOptions, export_users

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _safe(cell: str) -> str:
    if cell.startswith(FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


async def users_csv(engine: AsyncEngine, filter_text: str | None) -> AsyncIterator[str]:
    """The export as text chunks (a BOM first, so spreadsheets read UTF-8). Each chunk of the
    bulk export holds whole rows, so it is re-read and re-written cell by cell."""
    yield "\ufeff"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    async for chunk in export_users(engine, ExportOptions(format="csv", filter=filter_text)):
        writer.writerows([_safe(c) for c in row] for row in csv.reader(io.StringIO(chunk)))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
