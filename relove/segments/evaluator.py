"""The reference evaluator: does one user (a plain dict) match a filter? Pure Python.

It interprets the same primitives as the SQL compiler (see :mod:`relove.segments.lower`), so the
property test can check the compiled queries against it, and scenario conditions can test a
user without a database round trip. ``user`` is shaped like ``User.to_dict()``; datetimes may be
``datetime`` objects or ISO strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relove.db.types import utcnow
from relove.segments.compiler import as_tree
from relove.segments.lower import (
    Cmp,
    Contains,
    Exists,
    IContains,
    PAnd,
    PNot,
    POr,
    Pred,
    Regex,
    lower,
)
from relove.segments.tree import Field, FilterTree
from relove.segments.validate import regex_search

_MISSING = object()


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _get(user: Mapping[str, Any], f: Field) -> Any:
    if f.doc is None:
        value = user.get(f.path[0])
        if f.kind == "datetime" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if f.kind == "gender" and value is not None:
            value = getattr(value, "value", value)
        return _MISSING if value is None else value
    node: Any = user.get(f.doc) or {}
    for key in f.path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return _MISSING if node is None else node


def _same(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b


def _compare(value: Any, op: str, v: Any) -> bool:
    if op == "=":
        return _same(value, v)
    if isinstance(v, datetime):
        if not isinstance(value, datetime):
            return False
    elif _kind(value) != _kind(v) or _kind(v) not in ("number", "string"):
        return False
    if op == "<":
        return value < v
    if op == "<=":
        return value <= v
    if op == ">":
        return value > v
    if op == ">=":
        return value >= v
    raise ValueError(op)


def evaluate(p: Pred, user: Mapping[str, Any]) -> bool:
    if isinstance(p, PAnd):
        return all(evaluate(i, user) for i in p.items)
    if isinstance(p, POr):
        return any(evaluate(i, user) for i in p.items)
    if isinstance(p, PNot):
        return not evaluate(p.item, user)
    value = _get(user, p.field)  # type: ignore[attr-defined]
    if isinstance(p, Exists):
        return value is not _MISSING
    if value is _MISSING:
        return False
    if isinstance(p, Cmp):
        return _compare(value, p.op, p.value)
    if isinstance(p, Contains):
        if isinstance(value, list):
            return any(_same(e, p.value) for e in value)
        return isinstance(value, str) and isinstance(p.value, str) and p.value in value
    if isinstance(p, IContains):
        return isinstance(value, str) and p.value.lower() in value.lower()
    if isinstance(p, Regex):
        return isinstance(value, str) and regex_search(p.pattern, value)
    raise ValueError(f"unknown predicate {p!r}")


def matches(
    tree: str | FilterTree | Mapping[str, Any],
    user: Mapping[str, Any],
    *,
    now: datetime | None = None,
    segments: Mapping[str, FilterTree] | None = None,
) -> bool:
    """Whether ``user`` (shaped like ``User.to_dict()``) matches the filter."""
    return evaluate(lower(as_tree(tree), now=now or utcnow(), segments=segments), user)
