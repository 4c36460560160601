"""The primitive predicates every filter lowers to, with their meaning in Python.

Both the SQL compiler (:mod:`relove.segments.compiler`) and the reference evaluator
(:mod:`relove.segments.evaluator`) interpret only these, so their semantics cannot drift apart;
the property test checks one against the other on both databases.

* ``Cmp(field, op, value)`` with op ``= < <= > >=`` — type-strict: a number matches only JSON
  numbers, a string only strings, a boolean only booleans; a missing key or NULL column never
  matches;
* ``In(field, values)`` — equal (as ``Cmp =``) to one of several strings or numbers; compiled as
  ONE expression over a bound list, whatever its length;
* ``Contains(field, value)`` — a list holding the value as an element (type-strict), or, for a
  string value, a string holding it as a substring;
* ``IContains(field, text)`` — case-insensitive substring of a string;
* ``Regex(field, pattern)`` — case-insensitive regular-expression search in a string
  (:mod:`relove.regexp`; a search past its time limit raises ``RegexTooSlow``);
* ``Exists(field)`` — the key is present and not JSON ``null`` (a column is not NULL);
* ``DidAtLeast(event, where, since, count)`` — the user has at least ``count`` events named
  ``event`` at or after ``since`` (any time when None) whose ``props`` match ``where`` (a
  predicate on fields of the ``props`` document); ``count`` 0 is always true. Not a leaf: it
  reads the user's events (``user["events"]`` in Python, the ``events`` table in SQL).

``test(value)`` is the Python meaning: ``value`` is the field's value in one user, or
:data:`MISSING` (no such key, JSON ``null`` or a NULL column).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relove import regexp
from relove.segments.tree import Field


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A field without a value in one user: no such key, JSON ``null`` or a NULL column.
MISSING: Any = _Missing()


def kind_of(v: Any) -> str:
    """The JSON kind of a Python value: boolean, number, string, array, object or null."""
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


def same(a: Any, b: Any) -> bool:
    """Type-strict equality: ``1 == 1.0`` but ``1 != True`` and ``"1" != 1``."""
    return kind_of(a) == kind_of(b) and a == b


class Pred:
    """A primitive predicate (or a logical combination of them)."""


@dataclass(frozen=True)
class PAnd(Pred):
    items: tuple[Pred, ...]


@dataclass(frozen=True)
class POr(Pred):
    items: tuple[Pred, ...]


@dataclass(frozen=True)
class PNot(Pred):
    item: Pred


class Leaf(Pred):
    """A predicate on one field's value."""

    field: Field

    def test(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Cmp(Leaf):
    field: Field
    op: str
    value: Any  # str | int | float | bool, or datetime for date columns

    def test(self, value: Any) -> bool:
        if value is MISSING:
            return False
        v = self.value
        if self.op == "=":
            return same(value, v)
        if isinstance(v, datetime):
            if not isinstance(value, datetime):
                return False
        elif kind_of(value) != kind_of(v) or kind_of(v) not in ("number", "string"):
            return False
        if self.op == "<":
            return bool(value < v)
        if self.op == "<=":
            return bool(value <= v)
        if self.op == ">":
            return bool(value > v)
        if self.op == ">=":
            return bool(value >= v)
        raise ValueError(self.op)


@dataclass(frozen=True)
class In(Leaf):
    field: Field
    values: tuple[str | int | float, ...]  # strings and numbers, never booleans or dates

    def test(self, value: Any) -> bool:
        return value is not MISSING and any(same(value, v) for v in self.values)


@dataclass(frozen=True)
class Contains(Leaf):
    field: Field
    value: Any

    def test(self, value: Any) -> bool:
        if isinstance(value, list):
            return any(same(e, self.value) for e in value)
        return isinstance(value, str) and isinstance(self.value, str) and self.value in value


@dataclass(frozen=True)
class IContains(Leaf):
    field: Field
    value: str

    def test(self, value: Any) -> bool:
        return isinstance(value, str) and self.value.lower() in value.lower()


@dataclass(frozen=True)
class Regex(Leaf):
    field: Field
    pattern: str

    def test(self, value: Any) -> bool:
        return isinstance(value, str) and regexp.search(self.pattern, value)


@dataclass(frozen=True)
class Exists(Leaf):
    field: Field

    def test(self, value: Any) -> bool:
        return value is not MISSING


@dataclass(frozen=True)
class DidAtLeast(Pred):
    event: str
    where: Pred | None
    since: datetime | None
    count: int


def weight(p: Pred) -> int:
    """How many value comparisons a leaf stands for (an ``In`` counts each value)."""
    return len(p.values) if isinstance(p, In) else 1
