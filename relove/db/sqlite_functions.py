"""SQL functions the product registers on every SQLite connection.

* ``regexp(pattern, value)`` backs ``value REGEXP pattern``: a case-insensitive search that reads
  patterns the way PostgreSQL's ``~*`` does (see :mod:`relove.segments.validate`);
* ``relove_lower(text)`` is a Unicode-aware ``lower()`` (SQLite's own folds ASCII only).
"""

from __future__ import annotations

from typing import Any


def _regexp(pattern: Any, value: Any) -> int:
    from relove.segments.validate import regex_search

    if not isinstance(pattern, str) or not isinstance(value, str):
        return 0
    return 1 if regex_search(pattern, value) else 0


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def register(dbapi_connection: Any) -> None:
    dbapi_connection.create_function("regexp", 2, _regexp, deterministic=True)
    dbapi_connection.create_function("relove_lower", 1, _lower, deterministic=True)
