"""Type checks of one condition: which values an operator takes on which kind of field.

Errors name the value's position: ``last_seen_at > "abc"`` → "last_seen_at is a date: expected a
date like 2026-01-31 or -30d, got "abc" (position 16)".
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from functools import lru_cache
from typing import Any

from relove.errors import FilterError
from relove.segments.tree import (
    GENDERS,
    NEGATIONS,
    OPERATORS,
    Condition,
    DateValue,
    RelativeDate,
    render_value,
)

MAX_REGEX_LENGTH = 500
MAX_IN_VALUES = 1000
ORDERING = ("<", "<=", ">", ">=")

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


def _positive(op: str) -> str:
    return NEGATIONS.get(op, op)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


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


def _check_scalar(cond: Condition, op: str, v: Any) -> Any:
    """``v`` checked (and normalised) as the operand of positive ``op`` on ``cond.field``."""
    kind = cond.field.kind
    pos = cond.value_position
    name = cond.field.to_text()

    def fail(expected: str) -> FilterError:
        return FilterError(
            f"{name} {op}: expected {expected}, got {_describe(v)}", position=pos
        )

    if isinstance(v, tuple | list | dict) or v is None:
        raise fail("a single value")
    if op in ("icontains", "~"):
        if kind not in ("text", "json"):
            raise FilterError(f"{name} is {_KIND_NAMES[kind]}: {op} needs text", position=pos)
        if not isinstance(v, str):
            raise fail("a string")
        return check_regex(v, pos) if op == "~" else v
    if op == "contains":
        if kind not in ("text", "json"):
            raise FilterError(
                f"{name} is {_KIND_NAMES[kind]}: contains needs text or a list", position=pos
            )
        if kind == "text" and not isinstance(v, str):
            raise fail("a string")
        if isinstance(v, DateValue | RelativeDate):
            raise fail("a string, number or boolean")
        return v
    ordering = op in ORDERING
    if kind == "datetime":
        return _as_date(cond, v)
    if kind == "integer":
        if not isinstance(v, int) or isinstance(v, bool) or abs(v) >= 2**63:
            raise fail("a whole number")
        return v
    if kind == "text":
        if not isinstance(v, str):
            raise fail("a string")
        return v
    if kind == "boolean":
        if ordering:
            raise FilterError(f"{name} is true or false: use = or !=", position=cond.position)
        if not isinstance(v, bool):
            raise fail("true or false")
        return v
    if kind == "gender":
        if ordering:
            raise FilterError(f"{name}: use =, != or in", position=cond.position)
        if v not in GENDERS:
            raise fail("one of " + ", ".join(f'"{g}"' for g in GENDERS))
        return v
    # JSON: any scalar; ordering needs a number, string or date.
    if ordering and isinstance(v, bool):
        raise fail("a number, string or date (booleans only compare with = or !=)")
    if _is_number(v) and abs(v) >= 1e300:
        raise fail("a smaller number")
    return v


def check_condition(cond: Condition) -> Condition:
    """The condition with its values type-checked and normalised, or :class:`FilterError`."""
    op = cond.op
    if op not in OPERATORS:
        raise FilterError(
            f"unknown operator {op!r}: expected one of {', '.join(OPERATORS)}",
            position=cond.position,
        )
    positive = _positive(op)
    value = cond.value
    if positive == "exists":
        if value is not None:
            raise FilterError(f"{op} takes no value", position=cond.value_position)
        return cond
    if positive == "in":
        if not isinstance(value, tuple | list) or not value:
            raise FilterError(
                f"{cond.field} {op}: expected a list of values like (\"a\", \"b\")",
                position=cond.value_position,
            )
        if len(value) > MAX_IN_VALUES:
            raise FilterError(f"{op} takes at most {MAX_IN_VALUES} values",
                              position=cond.value_position)  # fmt: skip
        new = tuple(_check_scalar(cond, "=", v) for v in value)
    elif positive == "between":
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise FilterError(
                f"{cond.field} {op}: expected two values: between 1 and 10",
                position=cond.value_position,
            )
        new = tuple(_check_scalar(cond, ">=", v) for v in value)
    else:
        new = _check_scalar(cond, positive, value)
    return cond if new == value and type(new) is type(value) else replace(cond, value=new)
