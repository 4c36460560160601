"""SQL functions the product registers on every SQLite connection.

* ``regexp(pattern, value)`` backs ``value REGEXP pattern``: a case-insensitive search that reads
  patterns the way PostgreSQL's ``~*`` does, bounded in time per value and per statement (see
  :mod:`relove.regexp`; :func:`start_statement` starts a statement's budget);
* ``relove_lower(text)`` is a Unicode-aware ``lower()`` (SQLite's own folds ASCII only).

A function that raises makes SQLite fail the statement with "user-defined function raised
exception": :data:`FUNCTION_FAILED`; the only one that raises is ``regexp``, past its time.
"""

from __future__ import annotations

from typing import Any

from relove.regexp import StatementBudget

#: How SQLite reports an exception raised inside a registered function.
FUNCTION_FAILED = "user-defined function raised exception"
_REGEXP_KEY = "relove.regexp"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def register(dbapi_connection: Any, info: dict[Any, Any]) -> None:
    """Register the functions on a new connection; ``info`` is its pool record's ``info``."""
    budget = info[_REGEXP_KEY] = StatementBudget()
    dbapi_connection.create_function("regexp", 2, budget, deterministic=True)
    dbapi_connection.create_function("relove_lower", 1, _lower, deterministic=True)


def start_statement(info: dict[Any, Any]) -> None:
    """A statement begins on the connection whose pool record ``info`` this is."""
    budget = info.get(_REGEXP_KEY)
    if budget is not None:
        budget.start()
