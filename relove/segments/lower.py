"""Lowering: a filter tree → a small set of primitive predicates.

Both the SQL compiler and the Python reference evaluator interpret only these primitives, so
their semantics cannot drift apart:

* ``Cmp(field, op, value)`` with op ``= < <= > >=`` — type-strict: a number matches only JSON
  numbers, a string only strings, a boolean only booleans; a missing key or NULL column never
  matches;
* ``Contains(field, value)`` — a list holding the value as an element (type-strict), or, for a
  string value, a string holding it as a substring;
* ``IContains(field, text)`` — case-insensitive substring of a string;
* ``Regex(field, pattern)`` — case-insensitive regular-expression search in a string;
* ``Exists(field)`` — the key is present and not JSON ``null`` (a column is not NULL).

Negative operators (``!=``, ``not in``, ``not contains``, ``!~``, ``not exists``, ``not between``)
are the exact negation of the positive one, so ``city != "Москва"`` also matches users without
a city (as PostHog's "is not"). Dates resolve here: relative ones against ``now``; a date without
a time stands for the whole UTC day (``created_at = 2026-01-31`` is that day, ``<= 2026-01-31``
includes it). On markers, dates compare as ISO-8601 text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relove.errors import FilterError
from relove.segments.tree import (
    NEGATIONS,
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


class Pred:
    pass


@dataclass(frozen=True)
class PAnd(Pred):
    items: tuple[Pred, ...]


@dataclass(frozen=True)
class POr(Pred):
    items: tuple[Pred, ...]


@dataclass(frozen=True)
class PNot(Pred):
    item: Pred


@dataclass(frozen=True)
class Cmp(Pred):
    field: Field
    op: str
    value: Any  # str | int | float | bool, or datetime for date columns


@dataclass(frozen=True)
class Contains(Pred):
    field: Field
    value: Any


@dataclass(frozen=True)
class IContains(Pred):
    field: Field
    value: str


@dataclass(frozen=True)
class Regex(Pred):
    field: Field
    pattern: str


@dataclass(frozen=True)
class Exists(Pred):
    field: Field


def iso_text(d: DateValue, *, end: bool = False) -> str:
    """The bound of a date as ISO text, for markers holding dates as strings."""
    moment = d.end if end else d.start
    if d.date_only:
        return moment.date().isoformat()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}" if moment.microsecond else "")


def _date_cmp(f: Field, op: str, d: DateValue) -> Pred:
    start: datetime | str
    end: datetime | str
    if f.doc is None:
        start, end = d.start, d.end
    else:
        start, end = iso_text(d), iso_text(d, end=True)
    if d.date_only:
        if op == "=":
            return PAnd((Cmp(f, ">=", start), Cmp(f, "<", end)))
        if op == "<=":
            return Cmp(f, "<", end)
        if op == ">":
            return Cmp(f, ">=", end)
    return Cmp(f, op, start)


def _cmp(f: Field, op: str, value: Any, now: datetime) -> Pred:
    if isinstance(value, RelativeDate | DateValue):
        return _date_cmp(f, op, value.resolve(now))
    return Cmp(f, op, value)


def _condition(c: Condition, now: datetime) -> Pred:
    positive = NEGATIONS.get(c.op)
    if positive is not None:
        return PNot(_condition(Condition(c.field, positive, c.value), now))
    f, op, v = c.field, c.op, c.value
    if op in ("=", "<", "<=", ">", ">="):
        return _cmp(f, op, v, now)
    if op == "in":
        items = tuple(_cmp(f, "=", x, now) for x in v)
        return items[0] if len(items) == 1 else POr(items)
    if op == "between":
        lo, hi = v
        return PAnd((_cmp(f, ">=", lo, now), _cmp(f, "<=", hi, now)))
    if op == "contains":
        return Contains(f, v)
    if op == "icontains":
        return IContains(f, v)
    if op == "~":
        return Regex(f, v)
    if op == "exists":
        return Exists(f)
    raise FilterError(f"unknown operator {op!r}", position=c.position)


def lower(
    tree: FilterTree,
    *,
    now: datetime,
    segments: Mapping[str, FilterTree] | None = None,
    _stack: tuple[str, ...] = (),
) -> Pred:
    """``tree`` as primitives; saved segments referenced by name are inlined from ``segments``."""
    if isinstance(tree, Condition):
        return _condition(tree, now)
    if isinstance(tree, And):
        return PAnd(tuple(lower(i, now=now, segments=segments, _stack=_stack) for i in tree.items))
    if isinstance(tree, Or):
        return POr(tuple(lower(i, now=now, segments=segments, _stack=_stack) for i in tree.items))
    if isinstance(tree, Not):
        return PNot(lower(tree.item, now=now, segments=segments, _stack=_stack))
    if isinstance(tree, SegmentRef):
        if tree.name in _stack:
            chain = " → ".join([*_stack, tree.name])
            raise FilterError(f"segment {tree.name!r} refers to itself ({chain})",
                              position=tree.position)  # fmt: skip
        if segments is None or tree.name not in segments:
            raise FilterError(f"unknown segment {tree.name!r}", position=tree.position)
        return lower(segments[tree.name], now=now, segments=segments,
                     _stack=(*_stack, tree.name))  # fmt: skip
    raise FilterError(f"not a filter: {tree!r}")


def segment_names(tree: FilterTree) -> set[str]:
    """Names of the saved segments a tree refers to directly."""
    if isinstance(tree, SegmentRef):
        return {tree.name}
    if isinstance(tree, And | Or):
        return set().union(*(segment_names(i) for i in tree.items))
    if isinstance(tree, Not):
        return segment_names(tree.item)
    return set()
