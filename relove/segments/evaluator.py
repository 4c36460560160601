"""The reference evaluator: does one user (a plain dict) match a filter? Pure Python.

It interprets the same primitives as the SQL compiler (each primitive's ``test`` in
:mod:`relove.segments.primitives`), so the property test can check the compiled queries against
it, and scenario conditions can test a user without a database round trip. ``user`` is shaped
like ``User.to_dict()``; datetimes may be ``datetime`` objects or ISO strings.

``did …`` conditions read ``user["events"]``: the user's events as dicts with ``name``,
``props`` and ``at`` (at least those the filter's windows reach). Without that key a ``did``
cannot be decided, and :class:`FilterError` says so — never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relove.db.types import utcnow
from relove.errors import FilterError
from relove.segments.compiler import as_tree
from relove.segments.lower import lower
from relove.segments.primitives import MISSING, DidAtLeast, Leaf, PAnd, PNot, POr, Pred
from relove.segments.tree import Field, FilterTree


def _get(user: Mapping[str, Any], f: Field) -> Any:
    if f.doc is None:
        value = user.get(f.path[0])
        if f.kind == "datetime" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if f.kind == "gender" and value is not None:
            value = getattr(value, "value", value)
        return MISSING if value is None else value
    node: Any = user.get(f.doc) or {}
    for key in f.path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return MISSING if node is None else node


def _moment(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _did(p: DidAtLeast, user: Mapping[str, Any]) -> bool:
    events = user.get("events")
    if events is None:
        raise FilterError("did … needs the user's events, which are not available here")
    if p.count == 0:
        return True
    found = 0
    for e in events:
        if e["name"] != p.event:
            continue
        if p.since is not None and _moment(e["at"]) < p.since:
            continue
        if p.where is not None and not evaluate(p.where, {"props": e.get("props") or {}}):
            continue
        found += 1
        if found >= p.count:
            return True
    return False


def evaluate(p: Pred, user: Mapping[str, Any]) -> bool:
    if isinstance(p, PAnd):
        return all(evaluate(i, user) for i in p.items)
    if isinstance(p, POr):
        return any(evaluate(i, user) for i in p.items)
    if isinstance(p, PNot):
        return not evaluate(p.item, user)
    if isinstance(p, Leaf):
        return p.test(_get(user, p.field))
    if isinstance(p, DidAtLeast):
        return _did(p, user)
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
