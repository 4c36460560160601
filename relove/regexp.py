"""Regular expressions of the filter language (``username ~ "^iv"``): one dialect, bounded time.

A pattern is accepted only if PostgreSQL's ``~*`` and Python read it the same way (the common
subset: classes, groups, ``(?:…)``, lookahead, quantifiers, ``\\d \\s \\w``); it is matched
case-insensitively, ``.`` matches newlines and ``$`` only the very end.

PostgreSQL runs its own engine. SQLite (``REGEXP``, :mod:`relove.db.sqlite_functions`) and the
Python evaluator search with the ``regex`` module: Python's ``re`` semantics plus a timeout,
because a backtracking engine can take exponential time (``(a|aa)+$`` against 64 ``a``). One
search may take at most :data:`VALUE_TIMEOUT_S` on one value, and all the searches of one
SQLite statement at most :data:`STATEMENT_BUDGET_S`; past either it stops with
:data:`TOO_SLOW`. (A linear-time engine, google-re2, was measured too: its ``\\w``, ``\\d``
and case rules are ASCII-only — Cyrillic names would match differently than on PostgreSQL —
and it has no lookahead.)

This module sits under both ``relove.db`` and ``relove.segments`` and imports neither.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from functools import lru_cache

import regex

from relove.errors import FilterError

MAX_REGEX_LENGTH = 500
#: Longest time one search may take on one value, in seconds.
VALUE_TIMEOUT_S = 0.2
#: Longest time all the searches of one SQLite statement may take together, in seconds.
STATEMENT_BUDGET_S = 5.0
TOO_SLOW = (
    "the regular expression takes too long on this data (limits: "
    f"{VALUE_TIMEOUT_S:g} s per value, {STATEMENT_BUDGET_S:g} s per query); simplify it — "
    "nested repetition such as (a+)+ is the usual cause"
)

#: Escapes that mean the same in Python's ``re`` and PostgreSQL's regular expressions.
_SAFE_ESCAPES = set("dDsSwWntrf.^$*+?()[]{}|\\/-")
#: A bound ``{n}``, ``{n,}`` or ``{n,m}``; any other ``{`` reads differently per engine.
_BOUND = re.compile(r"\{\d+(?:,\d*)?\}")


class RegexTooSlow(FilterError):
    """A search passed its time limit."""

    def __init__(self) -> None:
        super().__init__(TOO_SLOW)


def translate(pattern: str, position: int | None = None) -> str:
    """The pattern in Python's syntax, or :class:`FilterError` naming what is not supported."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise FilterError(
            f"a regular expression must be at most {MAX_REGEX_LENGTH} characters",
            position=position,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(pattern)
    except (re.error, Warning) as e:
        raise FilterError(f"invalid regular expression {pattern!r}: {e}", position=position) from e
    i, in_class, out = 0, False, []
    while i < len(pattern):
        ch = pattern[i]
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        bad = None
        if ch == "\\":
            if nxt in _SAFE_ESCAPES:
                out.append(pattern[i : i + 2])
                i += 2
                continue
            bad = f"\\{nxt}"
        elif in_class:
            if ch == "[" and nxt in ":=.":
                bad = f"[{nxt}"
            elif ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                out.append(ch)
                i += 1
                ch = "^"
            if pattern[i + 1 : i + 2] == "]":
                out.append(ch)
                i += 1
                ch = "]"
        elif ch == "(" and nxt == "?" and pattern[i + 2 : i + 3] not in (":", "=", "!"):
            bad = pattern[i : i + 3]
        elif ch in "*+?}" and nxt == "+":
            bad = ch + nxt
        elif ch == "{" and not _BOUND.match(pattern, i):
            bad = "{" + nxt
        elif ch == "$":
            out.append("\\Z")
            i += 1
            continue
        if bad is not None:
            raise FilterError(
                f"{bad!r} is not supported in regular expressions "
                "(use the common subset: classes, groups, (?:…), quantifiers, \\d \\s \\w; "
                "\\{ for a literal brace)",
                position=position,
            )
        out.append(ch)
        i += 1
    return "".join(out)


def check(pattern: str, position: int | None = None) -> str:
    """``pattern`` if PostgreSQL and Python read it the same way, else :class:`FilterError`."""
    translate(pattern, position)
    return pattern


@lru_cache(maxsize=256)
def compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(translate(pattern), regex.IGNORECASE | regex.DOTALL | regex.V0)


def search(pattern: str, value: str, *, timeout: float = VALUE_TIMEOUT_S) -> bool:
    """Whether ``pattern`` occurs in ``value``; :class:`RegexTooSlow` past ``timeout`` seconds,
    :class:`FilterError` for a pattern outside the dialect."""
    try:
        return compiled(pattern).search(value, timeout=timeout) is not None
    except TimeoutError as e:
        raise RegexTooSlow() from e


class StatementBudget:
    """SQLite's ``REGEXP`` for one connection: each value within :data:`VALUE_TIMEOUT_S`, and
    the searches of the statement begun by the last :meth:`start` within
    :data:`STATEMENT_BUDGET_S` together (time spent searching, not the statement's own). A
    pattern outside the dialect matches nothing (filters are checked before they reach SQL)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.spent = 0.0

    def start(self) -> None:
        self.spent = 0.0

    def __call__(self, pattern: object, value: object) -> int:
        if not isinstance(pattern, str) or not isinstance(value, str):
            return 0
        remaining = STATEMENT_BUDGET_S - self.spent
        if remaining <= 0:
            raise RegexTooSlow()
        began = self.clock()
        try:
            return 1 if search(pattern, value, timeout=min(VALUE_TIMEOUT_S, remaining)) else 0
        except RegexTooSlow:
            raise
        except FilterError:
            return 0
        finally:
            self.spent += self.clock() - began
