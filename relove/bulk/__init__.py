"""Bulk import and export of users (see docs/bulk.md).

Import: ``source = open_source(stream, format=…, encoding=…, types=…)`` then
``summary = await import_rows(engine, source, ImportOptions(mode=…), progress=…, errors=…)``.
Export: ``async for chunk in export_users(engine, ExportOptions(...))`` (text chunks).
"""

from relove.bulk.base import ImportMode
from relove.bulk.columns import parse_types
from relove.bulk.errors_file import ErrorsFile, ErrorSink
from relove.bulk.importer import (
    Change,
    ImportOptions,
    ImportProgress,
    ImportSummary,
    Rejection,
    import_rows,
)
from relove.bulk.readers import Source, guess_format, open_source

__all__ = [
    "Change",
    "ErrorSink",
    "ErrorsFile",
    "ImportMode",
    "ImportOptions",
    "ImportProgress",
    "ImportSummary",
    "Rejection",
    "Source",
    "guess_format",
    "import_rows",
    "open_source",
    "parse_types",
]
