"""The filter tree: what a filter text parses to, what programs send as JSON, what compiles to SQL.

Nodes are immutable dataclasses. ``FilterTree`` is their common base::

    And([Condition(Field("markers", ("city",)), "=", "Москва"),
         Not(Condition(Field("markers", ("tags",)), "contains", "spam"))])

JSON form (for programs)::

    {"and": [{"field": "markers.city", "op": "=", "value": "Москва"},
             {"not": {"field": "markers.tags", "op": "contains", "value": "spam"}}]}

Values are JSON scalars; dates are ``{"date": "2026-01-31"}`` (or an ISO datetime) and relative
dates ``{"relative": "-30d"}``; ``in`` takes a list, ``between`` a list of two, ``exists`` none.
A saved segment is referenced as ``{"segment": "name"}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from relove.errors import FilterError

#: Built-in columns of ``users`` a filter can name, with their value kind.
COLUMNS: dict[str, str] = {
    "id": "integer",
    "username": "text",
    "first_name": "text",
    "last_name": "text",
    "is_active": "boolean",
    "gender": "gender",
    "created_at": "datetime",
    "updated_at": "datetime",
    "last_seen_at": "datetime",
}
NULLABLE_COLUMNS = {"username", "first_name", "last_name", "last_seen_at"}
GENDERS = ("male", "female", "unknown")

#: Words a bare marker name cannot be (it needs ``markers.``); operator words are added from
#: the operator table (:func:`keywords`).
_LOGIC_KEYWORDS = {"and", "or", "not", "true", "false", "segment", "markers", "context", "null",
                   "did"}  # fmt: skip
#: Dates a filter can name: a day on either side stays representable in every timezone.
MIN_DATE, MAX_DATE = date(1, 1, 2), date(9999, 12, 30)
#: How far a relative date reaches (``-36500d`` is fine, ``-999999w`` is not).
MAX_RELATIVE = timedelta(days=366_000)


@lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    from relove.segments.operators import keywords as operator_keywords

    return frozenset(_LOGIC_KEYWORDS | operator_keywords())


_RELATIVE_RE = re.compile(r"^([+-])(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SIMPLE_KEY_RE = re.compile(r"^[^\W\d]\w*$")
_SEGMENT_KEY_RE = re.compile(r"^\w+$")


@dataclass(frozen=True)
class DateValue:
    """An absolute date (``2026-01-31``: the whole UTC day) or instant (ISO datetime)."""

    text: str
    start: datetime = dataclasses.field(compare=False)
    date_only: bool = dataclasses.field(compare=False)

    @classmethod
    def parse(cls, text: str) -> DateValue:
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                _check_range(text, d)
                return cls(text, datetime(d.year, d.month, d.day, tzinfo=UTC), True)
            dt = datetime.fromisoformat(text)
            _check_range(text, dt.date())
            dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
        except (ValueError, OverflowError) as e:
            raise FilterError(f"{text!r} is not a valid date") from e
        return cls(text, dt, False)

    def resolve(self, now: datetime) -> DateValue:
        return self

    @property
    def end(self) -> datetime:
        """The first instant after the value (next midnight for a date, else the instant)."""
        return self.start + timedelta(days=1) if self.date_only else self.start


def _check_range(text: str, d: date) -> None:
    if not MIN_DATE <= d <= MAX_DATE:
        raise FilterError(f"{text!r} is out of range: dates go from {MIN_DATE} to {MAX_DATE}")


@dataclass(frozen=True)
class RelativeDate:
    """``-30d``: an instant relative to "now", resolved when the filter compiles."""

    text: str

    @classmethod
    def parse(cls, text: str) -> RelativeDate:
        if not _RELATIVE_RE.match(text):
            raise FilterError(f"{text!r} is not a relative date like -30d, -12h or -2w")
        value = cls(text)
        value.delta()
        return value

    def delta(self) -> timedelta:
        sign, amount, unit = _RELATIVE_RE.match(self.text).groups()  # type: ignore[union-attr]
        d = timedelta(**{_UNITS[unit]: int(amount)})  # at most 999,999 weeks: no overflow
        if d > MAX_RELATIVE:
            raise FilterError(f"{self.text!r} is too far away: relative dates reach at most "
                              f"{MAX_RELATIVE.days} days")  # fmt: skip
        return -d if sign == "-" else d

    def resolve(self, now: datetime) -> DateValue:
        try:
            instant = now + self.delta()
        except OverflowError as e:
            raise FilterError(f"{self.text!r} is too far away") from e
        return DateValue(instant.isoformat(), instant, False)


Scalar = str | int | float | bool | DateValue | RelativeDate


@dataclass(frozen=True)
class Field:
    """A column (``doc is None``) or a path into ``markers`` / ``context``."""

    doc: str | None
    path: tuple[str, ...]

    @property
    def column(self) -> str | None:
        return self.path[0] if self.doc is None else None

    @property
    def kind(self) -> str:
        return "json" if self.doc else COLUMNS[self.path[0]]

    def to_text(self) -> str:
        if self.doc is None:
            return self.path[0]
        parts = [k if _SEGMENT_KEY_RE.match(k) else json.dumps(k, ensure_ascii=False)
                 for k in self.path]  # fmt: skip
        first = self.path[0]
        if self.doc == "props":  # an event's property, inside ``did … where``
            plain = (_SIMPLE_KEY_RE.match(first) and first.lower() not in keywords()
                     and first != "props")  # fmt: skip
            return ".".join(parts if plain else ["props", *parts])
        if (
            self.doc == "markers"
            and _SIMPLE_KEY_RE.match(first)
            and first.lower() not in keywords()
            and first not in COLUMNS
        ):
            return ".".join(parts)
        return ".".join([self.doc, *parts])

    def __str__(self) -> str:
        return self.to_text()


class FilterTree:
    """Base of every filter node."""

    def to_json(self) -> Any:
        raise NotImplementedError

    def to_text(self) -> str:
        return _render(self, 0)

    def __str__(self) -> str:
        return self.to_text()

    @staticmethod
    def from_json(data: Any) -> FilterTree:
        from relove.segments.jsonform import tree_from_json

        return tree_from_json(data)


@dataclass(frozen=True)
class And(FilterTree):
    items: tuple[FilterTree, ...]

    def to_json(self) -> Any:
        return {"and": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Or(FilterTree):
    items: tuple[FilterTree, ...]

    def to_json(self) -> Any:
        return {"or": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Not(FilterTree):
    item: FilterTree

    def to_json(self) -> Any:
        return {"not": self.item.to_json()}


@dataclass(frozen=True)
class Condition(FilterTree):
    field: Field
    op: str
    value: Any = None
    #: 1-based offsets of the field and value in the filter text, for error messages.
    position: int | None = dataclasses.field(default=None, compare=False)
    value_position: int | None = dataclasses.field(default=None, compare=False)

    def to_json(self) -> Any:
        from relove.segments.operators import Arity, operator

        out: dict[str, Any] = {"field": _json_field(self.field), "op": self.op}
        if operator(self.op).arity is not Arity.NONE:
            out["value"] = value_to_json(self.value)
        return out


@dataclass(frozen=True)
class SegmentRef(FilterTree):
    name: str
    position: int | None = dataclasses.field(default=None, compare=False)

    def to_json(self) -> Any:
        return {"segment": self.name}


#: Units of a ``within`` duration, and the longest one (ten years).
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=3650)
#: The largest count ``did … N times`` takes.
MAX_TIMES = 1_000_000
#: How a ``did`` count compares (the symbols of the comparison operators).
COUNT_OPS = ("=", "!=", "<", "<=", ">", ">=")
_DURATION_RE = re.compile(r"^(\d{1,7})([smhdw])$")


def parse_duration(text: str) -> timedelta:
    """``"7d"`` → 7 days; a positive whole number of s, m, h, d or w up to ten years."""
    m = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise FilterError(f"{text!r} is not a duration like 7d, 12h, 30m or 2w")
    amount, unit = m.groups()
    d = timedelta(**{DURATION_UNITS[unit]: int(amount)})
    if not timedelta(0) < d <= MAX_DURATION:
        raise FilterError(f"within {text}: a duration must be more than 0 and at most "
                          f"{MAX_DURATION.days}d")  # fmt: skip
    return d


@dataclass(frozen=True)
class Did(FilterTree):
    """``did "message.received" where (…) >= 5 times within 30d``: a user's events named
    ``event`` (those whose ``props`` match ``where``, at most ``within`` old) number ``op count``.
    Without a count it means ``>= 1 times``; without ``within``, all of the user's history."""

    event: str
    where: FilterTree | None = None
    op: str = ">="
    count: int = 1
    within: str | None = None
    position: int | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_event_name(self.event, self.position)
        if self.op not in COUNT_OPS:
            raise FilterError(f"did …: unknown comparison {self.op!r}: expected one of "
                              + ", ".join(COUNT_OPS), position=self.position)  # fmt: skip
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise FilterError(f"did …: the count must be a whole number, got {self.count!r}",
                              position=self.position)  # fmt: skip
        if not 0 <= self.count <= MAX_TIMES:
            raise FilterError(f"did …: the count must be between 0 and {MAX_TIMES}",
                              position=self.position)  # fmt: skip
        if self.within is not None:
            parse_duration(self.within)

    @property
    def duration(self) -> timedelta | None:
        return None if self.within is None else parse_duration(self.within)

    def to_json(self) -> Any:
        out: dict[str, Any] = {"did": self.event}
        if self.where is not None:
            out["where"] = self.where.to_json()
        if (self.op, self.count) != (">=", 1):
            out["op"], out["count"] = self.op, self.count
        if self.within is not None:
            out["within"] = self.within
        return out


#: The longest event name (as ``events.name`` holds).
EVENT_NAME_MAX = 100


def check_event_name(name: Any, position: int | None = None) -> str:
    from relove.users.paths import text_problem

    if not isinstance(name, str) or not name.strip():
        raise FilterError("did …: the event name must be a non-empty string", position=position)
    if len(name) > EVENT_NAME_MAX:
        raise FilterError(f"did …: an event name has at most {EVENT_NAME_MAX} characters",
                          position=position)  # fmt: skip
    problem = text_problem(name)
    if problem:
        raise FilterError(f"did …: the event name {problem}", position=position)
    return name


def _json_field(f: Field) -> str:
    if f.doc is None:
        return f.path[0]
    return ".".join([f.doc, *f.path])


def value_to_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [value_to_json(v) for v in value]
    if isinstance(value, DateValue):
        return {"date": value.text}
    if isinstance(value, RelativeDate):
        return {"relative": value.text}
    return value


# -- text rendering ----------------------------------------------------------------------------
_PREC = {Or: 1, And: 2, Not: 3}


def render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError("numbers must be finite")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, DateValue | RelativeDate):
        return value.text
    if isinstance(value, tuple | list):
        return "(" + ", ".join(render_value(v) for v in value) + ")"
    raise FilterError(f"cannot render value {value!r}")


def _render(node: FilterTree, parent: int) -> str:
    if isinstance(node, Condition):
        from relove.segments.operators import Arity, operator

        f = node.field.to_text()
        arity = operator(node.op).arity
        if arity is Arity.NONE:
            return f"{f} {node.op}"
        if arity is Arity.PAIR:
            lo, hi = node.value
            return f"{f} {node.op} {render_value(lo)} and {render_value(hi)}"
        return f"{f} {node.op} {render_value(node.value)}"
    if isinstance(node, SegmentRef):
        return "segment:" + json.dumps(node.name, ensure_ascii=False)
    if isinstance(node, Did):
        text = "did " + json.dumps(node.event, ensure_ascii=False)
        if node.where is not None:
            inner = _render(node.where, 0)
            text += f" where {inner}" if isinstance(node.where, Condition) else f" where ({inner})"
        if (node.op, node.count) != (">=", 1):
            text += f" {node.op} {node.count} times"
        if node.within is not None:
            text += f" within {node.within}"
        return text
    prec = _PREC[type(node)]
    if isinstance(node, Not):
        text = "not " + _render(node.item, prec)
    else:
        sep = " and " if isinstance(node, And) else " or "
        text = sep.join(_render(i, prec) for i in node.items)  # type: ignore[attr-defined]
    return f"({text})" if prec < parent or (prec == parent and prec != 3) else text
