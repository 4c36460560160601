"""The JSON form of a filter tree, for programs: ``{"and": [{"field", "op", "value"}, …]}``."""

from __future__ import annotations

import math
from typing import Any

from relove.errors import FilterError, InvalidKey
from relove.segments.lower import MAX_NESTING
from relove.segments.operators import Arity, check_condition, operator
from relove.segments.tree import (
    COLUMNS,
    And,
    Condition,
    DateValue,
    Field,
    FilterTree,
    Not,
    Or,
    RelativeDate,
    SegmentRef,
)
from relove.users.paths import parse_path, text_problem


def field_from_text(text: str) -> Field:
    """``"city"`` / ``"markers.city"`` / ``"context.summary"`` / ``"gender"`` → :class:`Field`."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("a field must be a non-empty string")
    if text in COLUMNS:
        return Field(None, (text,))
    head, _, rest = text.partition(".")
    try:
        if head.lower() in ("markers", "context"):
            if not rest:
                raise FilterError(f"{head} needs a key, e.g. {head.lower()}.city")
            return Field(head.lower(), parse_path(rest))
        if head in COLUMNS:
            raise FilterError(f"{head} is a column and has no keys inside")
        return Field("markers", parse_path(text))
    except InvalidKey as e:
        raise FilterError(str(e)) from e


def _value(data: Any) -> Any:
    if isinstance(data, dict):
        if set(data) == {"date"} and isinstance(data["date"], str):
            return DateValue.parse(data["date"])
        if set(data) == {"relative"} and isinstance(data["relative"], str):
            return RelativeDate.parse(data["relative"])
        raise FilterError(f"unknown value object {data!r}: expected {{\"date\": …}} or "
                          "{\"relative\": …}")  # fmt: skip
    if isinstance(data, list):
        return tuple(_value(v) for v in data)
    if isinstance(data, float) and not math.isfinite(data):
        raise FilterError("numbers must be finite")
    if data is None:
        raise FilterError("null is not a value: use the exists / not exists operators")
    if not isinstance(data, str | int | float | bool):
        raise FilterError(f"unsupported value {data!r}")
    return data


def tree_from_json(data: Any, depth: int = 0) -> FilterTree:
    if depth > MAX_NESTING:
        raise FilterError(f"the filter is nested too deeply: more than {MAX_NESTING} levels of "
                          "and / or / not")  # fmt: skip
    if not isinstance(data, dict):
        raise FilterError(f"expected a JSON object, got {type(data).__name__}")
    keys = set(data)
    if keys in ({"and"}, {"or"}):
        key = next(iter(keys))
        items = data[key]
        if not isinstance(items, list) or not items:
            raise FilterError(f"{key!r} needs a non-empty list")
        nodes = tuple(tree_from_json(i, depth + 1) for i in items)
        if len(nodes) == 1:
            return nodes[0]
        return And(nodes) if key == "and" else Or(nodes)
    if keys == {"not"}:
        return Not(tree_from_json(data["not"], depth + 1))
    if keys == {"segment"}:
        name = data["segment"]
        if not isinstance(name, str) or not name.strip():
            raise FilterError("a segment name must be a non-empty string")
        problem = text_problem(name)
        if problem:
            raise FilterError(f"the segment name {problem}")
        return SegmentRef(name)
    if "field" in keys and "op" in keys and keys <= {"field", "op", "value"}:
        if not isinstance(data["op"], str):
            raise FilterError("op must be a string")
        op = operator(data["op"])
        if op.arity is Arity.NONE:
            if "value" in data:
                raise FilterError(f"{op.name} takes no value")
            value = None
        else:
            if "value" not in data:
                raise FilterError(f"{op.name} needs a value")
            value = _value(data["value"])
            if op.arity is Arity.ONE and isinstance(value, tuple):
                raise FilterError(f"{op.name} takes a single value, not a list")
        return check_condition(Condition(field_from_text(data["field"]), op.name, value))
    raise FilterError(
        "expected {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}, {\"segment\": name} "
        f"or {{\"field\", \"op\", \"value\"}}, got keys {sorted(keys)}"
    )
