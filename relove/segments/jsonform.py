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
    Did,
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


def prop_field_from_text(text: str) -> Field:
    """A field inside ``did … where``: ``"command"`` or ``"props.command"`` → the event's
    ``props`` path."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("a field must be a non-empty string")
    parts = text.split(".")
    if len(parts) > 1 and parts[0] == "props":
        parts = parts[1:]
    try:
        return Field("props", parse_path(parts))
    except InvalidKey as e:
        raise FilterError(str(e)) from e


_DID_KEYS = {"did", "where", "op", "count", "within"}


def _did_from_json(data: dict[str, Any], depth: int) -> Did:
    unknown = set(data) - _DID_KEYS
    if unknown:
        raise FilterError(f"did: unknown key {sorted(unknown)[0]!r}; expected "
                          + ", ".join(sorted(_DID_KEYS)))  # fmt: skip
    if ("op" in data) != ("count" in data):
        raise FilterError("did: op and count go together, e.g. \"op\": \">=\", \"count\": 5")
    where = data.get("where")
    within = data.get("within")
    if within is not None and not isinstance(within, str):
        raise FilterError("did: within must be a duration text like \"7d\"")
    op = data.get("op", ">=")
    if not isinstance(op, str):
        raise FilterError("did: op must be a string")
    op = {"==": "=", "<>": "!="}.get(op.strip(), op.strip())
    return Did(
        data["did"],
        None if where is None else tree_from_json(where, depth + 1, props=True),
        op,
        data.get("count", 1),
        within,
    )


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


def tree_from_json(data: Any, depth: int = 0, *, props: bool = False) -> FilterTree:
    """The tree of a JSON filter; ``props``: inside ``did … where`` (fields are the event's
    props, no ``did`` or ``segment`` inside)."""
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
        nodes = tuple(tree_from_json(i, depth + 1, props=props) for i in items)
        if len(nodes) == 1:
            return nodes[0]
        return And(nodes) if key == "and" else Or(nodes)
    if keys == {"not"}:
        return Not(tree_from_json(data["not"], depth + 1, props=props))
    if props and keys & {"segment", "did"}:
        raise FilterError("did … where: its fields are the event's props; a segment or another "
                          "did cannot be used inside")  # fmt: skip
    if "did" in keys:
        return _did_from_json(data, depth)
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
        field = (prop_field_from_text if props else field_from_text)(data["field"])
        return check_condition(Condition(field, op.name, value))
    raise FilterError(
        "expected {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}, {\"segment\": name} "
        f"or {{\"field\", \"op\", \"value\"}}, got keys {sorted(keys)}"
    )
