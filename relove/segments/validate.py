"""Value rules: which operands an operator takes on which kind of field (the operators of
:mod:`relove.segments.operators` name their rule), and the regular-expression dialect.

Errors name the value's position: ``last_seen_at > "abc"`` → "last_seen_at is a date: expected a
date like 2026-01-31 or -30d, got "abc" (position 16)".
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from relove.errors import FilterError
from relove.segments.tree import (
    GENDERS,
    Condition,
    DateValue,
    RelativeDate,
    render_value,
)
from relove.users.paths import int64_problem, text_problem

MAX_REGEX_LENGTH = 500
#: Numbers in filters stay below this magnitude (a cast to NUMERIC never overflows).
MAX_FLOAT = 1e300

_KIND_NAMES = {
    "integer": "a whole number",
    "text": "text",
    "boolean": "true or false",
    "gender": "a gender",
    "datetime": "a date",
    "json": "a marker",
}
#: Escapes that mean the same in Python's ``re`` and PostgreSQL's regular expressions.
_SAFE_ESCAPES = set("dDsSwWntrf.^$*+?()[]{}|\\/-")


def _describe(v: Any) -> str:
    try:
        return render_value(v)
    except FilterError:
        return repr(v)


def _translate(pattern: str, position: int | None = None) -> str:
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
        elif ch == "{" and nxt == ",":
            bad = "{,"
        elif ch == "$":
            out.append("\\Z")
            i += 1
            continue
        if bad is not None:
            raise FilterError(
                f"{bad!r} is not supported in regular expressions "
                "(use the common subset: classes, groups, (?:…), quantifiers, \\d \\s \\w)",
                position=position,
            )
        out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """The pattern as Python reads it the way PostgreSQL's case-insensitive ``~*`` does:
    ``.`` matches newlines, ``$`` only the very end."""
    return re.compile(_translate(pattern), re.IGNORECASE | re.DOTALL)


def check_regex(pattern: str, position: int | None = None) -> str:
    """Accept a regular expression only if PostgreSQL and Python read it the same way."""
    _translate(pattern, position)
    return pattern


def regex_search(pattern: str, value: str) -> bool:
    try:
        return compile_regex(pattern).search(value) is not None
    except (FilterError, re.error):
        return False


def _as_date(cond: Condition, v: Any) -> DateValue | RelativeDate:
    if isinstance(v, DateValue | RelativeDate):
        return v
    if isinstance(v, str):
        try:
            return DateValue.parse(v.strip())
        except FilterError:
            pass
    raise FilterError(
        f"{cond.field} is a date: expected a date like 2026-01-31, 2026-01-31T10:00 or -30d, "
        f"got {_describe(v)}",
        position=cond.value_position,
    )


#: ``rule(condition, operator name, operand)`` → the operand checked and normalised, or a
#: :class:`FilterError`. Each operator of :mod:`relove.segments.operators` names its rule.
ValueRule = Callable[[Condition, str, Any], Any]


def _fail(cond: Condition, op: str, v: Any, expected: str) -> FilterError:
    return FilterError(
        f"{cond.field.to_text()} {op}: expected {expected}, got {_describe(v)}",
        position=cond.value_position,
    )


def _scalar(cond: Condition, op: str, v: Any) -> Any:
    """What every operand shares: one value, text both databases read alike, a number in
    range. Checked before any SQL, so both databases refuse the same filters."""
    if isinstance(v, tuple | list | dict) or v is None:
        raise _fail(cond, op, v, "a single value")
    if isinstance(v, str):
        problem = text_problem(v)
        if problem:
            raise FilterError(f"{cond.field.to_text()} {op}: the text {problem}",
                              position=cond.value_position)  # fmt: skip
    elif isinstance(v, int) and not isinstance(v, bool):
        problem = int64_problem(v)
        if problem:
            raise FilterError(f"{cond.field.to_text()} {op}: {v} {problem}",
                              position=cond.value_position)  # fmt: skip
    elif isinstance(v, float) and (not math.isfinite(v) or abs(v) >= MAX_FLOAT):
        raise _fail(cond, op, v, "a smaller number")
    return v


def _needs_text(cond: Condition, op: str, what: str) -> None:
    kind = cond.field.kind
    if kind not in ("text", "json"):
        raise FilterError(f"{cond.field.to_text()} is {_KIND_NAMES[kind]}: {op} needs {what}",
                          position=cond.value_position)  # fmt: skip


def rule_substring(cond: Condition, op: str, v: Any) -> Any:
    """``icontains``: a string, on text or a marker."""
    v = _scalar(cond, op, v)
    _needs_text(cond, op, "text")
    if not isinstance(v, str):
        raise _fail(cond, op, v, "a string")
    return v


def rule_regex(cond: Condition, op: str, v: Any) -> Any:
    """``~``: a regular expression both databases read the same way."""
    return check_regex(rule_substring(cond, op, v), cond.value_position)


def rule_contains(cond: Condition, op: str, v: Any) -> Any:
    """``contains``: a substring of text, or an element of a list held in a marker."""
    v = _scalar(cond, op, v)
    _needs_text(cond, op, "text or a list")
    if cond.field.kind == "text" and not isinstance(v, str):
        raise _fail(cond, op, v, "a string")
    if isinstance(v, DateValue | RelativeDate):
        raise _fail(cond, op, v, "a string, number or boolean")
    return v


def _by_kind(cond: Condition, op: str, v: Any, *, ordering: bool) -> Any:
    v = _scalar(cond, op, v)
    kind = cond.field.kind
    name = cond.field.to_text()
    if kind == "datetime":
        return _as_date(cond, v)
    if kind == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            raise _fail(cond, op, v, "a whole number")
        return v
    if kind == "text":
        if not isinstance(v, str):
            raise _fail(cond, op, v, "a string")
        return v
    if kind == "boolean":
        if ordering:
            raise FilterError(f"{name} is true or false: use = or !=", position=cond.position)
        if not isinstance(v, bool):
            raise _fail(cond, op, v, "true or false")
        return v
    if kind == "gender":
        if ordering:
            raise FilterError(f"{name}: use =, != or in", position=cond.position)
        if v not in GENDERS:
            raise _fail(cond, op, v, "one of " + ", ".join(f'"{g}"' for g in GENDERS))
        return v
    # JSON: any scalar; ordering needs a number, string or date.
    if ordering and isinstance(v, bool):
        raise _fail(cond, op, v, "a number, string or date (booleans only compare with = or !=)")
    return v


def rule_equal(cond: Condition, op: str, v: Any) -> Any:
    """``=`` (and each value of ``in``): a value of the field's kind."""
    return _by_kind(cond, op, v, ordering=False)


def rule_order(cond: Condition, op: str, v: Any) -> Any:
    """``< <= > >=`` (and each bound of ``between``): a number, string or date."""
    return _by_kind(cond, op, v, ordering=True)
