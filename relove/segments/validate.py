"""Value rules: which operands an operator takes on which kind of field (the operators of
:mod:`relove.segments.operators` name their rule). Regular expressions: :mod:`relove.regexp`.

Errors name the value's position: ``last_seen_at > "abc"`` → "last_seen_at is a date: expected a
date like 2026-01-31 or -30d, got "abc" (position 16)".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from relove import regexp
from relove.errors import FilterError
from relove.segments.tree import (
    GENDERS,
    Condition,
    DateValue,
    RelativeDate,
    render_value,
)
from relove.users.paths import int64_problem, text_problem

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


def _describe(v: Any) -> str:
    try:
        return render_value(v)
    except FilterError:
        return repr(v)


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
    return regexp.check(rule_substring(cond, op, v), cond.value_position)


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
