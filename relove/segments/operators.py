"""The filter operators, one table: how each is typed, what it takes, what it means.

Everything that knows about operators consults :data:`OPERATORS`:

* the parser builds the operator part of its grammar from it (:func:`grammar`), and names
  operators in its "expected …" messages from it;
* the JSON form accepts its names (and spellings such as ``==``); the text form prints ``name``;
* :func:`check_condition` applies the operator's value rule (:mod:`relove.segments.validate`);
* lowering calls its ``lower`` to get primitives (:mod:`relove.segments.primitives`), which
  the SQL compiler and the Python evaluator interpret.

A negative operator (``!=``, ``not in`` …) names the positive one it ``negates`` and means its
exact negation, so ``city != "X"`` also matches users without a city.

Adding an operator: one entry here. If no existing primitive expresses it, add one to
``primitives.py`` (with its Python meaning) and its SQL to ``compiler.py`` — three files at most.
Document it in ``docs/segments.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from relove.errors import FilterError
from relove.segments.primitives import (
    Cmp,
    Contains,
    Exists,
    IContains,
    In,
    PAnd,
    POr,
    Pred,
    Regex,
)
from relove.segments.tree import Condition, DateValue, Field, RelativeDate
from relove.segments.validate import (
    ValueRule,
    rule_contains,
    rule_equal,
    rule_order,
    rule_regex,
    rule_substring,
)

#: The most values ``in (…)`` takes (compiled as one expression over one bound list).
MAX_IN_VALUES = 1000


class Arity(Enum):
    """What follows an operator in a condition."""

    NONE = "none"  # city exists
    ONE = "one"  # city = "Москва"
    LIST = "list"  # city in ("Москва", "Тверь")
    PAIR = "pair"  # score between 10 and 20


#: ``lower(field, operand, now)`` → the primitive predicate a positive operator means.
Lowering = Callable[[Field, Any, datetime], Pred]


@dataclass(frozen=True)
class Operator:
    #: Canonical text form, also its name in the JSON form.
    name: str
    arity: Arity
    #: Grammar terminal of its own word or symbol (``EQ``); None for ``not <positive>`` forms.
    token: str | None = None
    #: What the terminal matches: symbols (``"=="``, ``"="``) or one keyword (``"contains"``).
    spellings: tuple[str, ...] = ()
    #: Positive operators: the value rule for each operand, and the meaning.
    rule: ValueRule | None = None
    lower: Lowering | None = None
    #: Negative operators: the positive operator this one is the exact negation of.
    negates: str | None = None

    @property
    def positive(self) -> Operator:
        return OPERATORS[self.negates] if self.negates else self

    @property
    def is_keyword(self) -> bool:
        return bool(self.spellings) and self.spellings[0][0].isalpha()


# -- meanings -----------------------------------------------------------------------------------
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


def iso_text(d: DateValue, *, end: bool = False) -> str:
    """The bound of a date as ISO text, for markers holding dates as strings."""
    moment = d.end if end else d.start
    if d.date_only:
        return moment.date().isoformat()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}" if moment.microsecond else "")


def compare(op: str) -> Lowering:
    """``= < <= > >=``; a date stands for its whole UTC day, a relative date resolves now."""

    def lower(f: Field, value: Any, now: datetime) -> Pred:
        if isinstance(value, RelativeDate | DateValue):
            return _date_cmp(f, op, value.resolve(now))
        return Cmp(f, op, value)

    return lower


def _lower_in(f: Field, values: Any, now: datetime) -> Pred:
    plain: list[Any] = []
    rest: list[Pred] = []
    distinct = {(type(v) is bool, v): v for v in values}.values()  # True is not 1 here
    for v in distinct:
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            plain.append(v)
        else:
            rest.append(compare("=")(f, v, now))
    items = ([In(f, tuple(plain)) if len(plain) > 1 else Cmp(f, "=", plain[0])]
             if plain else []) + rest  # fmt: skip
    return items[0] if len(items) == 1 else POr(tuple(items))


def _lower_between(f: Field, value: Any, now: datetime) -> Pred:
    lo, hi = value
    return PAnd((compare(">=")(f, lo, now), compare("<=")(f, hi, now)))


# -- the table ----------------------------------------------------------------------------------
_TABLE = (
    Operator("=", Arity.ONE, "EQ", ("==", "="), rule_equal, compare("=")),
    Operator("!=", Arity.ONE, "NE", ("!=", "<>"), negates="="),
    Operator("<", Arity.ONE, "LT", ("<",), rule_order, compare("<")),
    Operator("<=", Arity.ONE, "LE", ("<=",), rule_order, compare("<=")),
    Operator(">", Arity.ONE, "GT", (">",), rule_order, compare(">")),
    Operator(">=", Arity.ONE, "GE", (">=",), rule_order, compare(">=")),
    Operator("in", Arity.LIST, "IN", ("in",), rule_equal, _lower_in),
    Operator("not in", Arity.LIST, negates="in"),
    Operator("contains", Arity.ONE, "CONTAINS", ("contains",), rule_contains,
             lambda f, v, now: Contains(f, v)),  # fmt: skip
    Operator("not contains", Arity.ONE, negates="contains"),
    Operator("icontains", Arity.ONE, "ICONTAINS", ("icontains",), rule_substring,
             lambda f, v, now: IContains(f, v)),  # fmt: skip
    Operator("not icontains", Arity.ONE, negates="icontains"),
    Operator("~", Arity.ONE, "MATCH", ("~",), rule_regex, lambda f, v, now: Regex(f, v)),
    Operator("!~", Arity.ONE, "NMATCH", ("!~",), negates="~"),
    Operator("exists", Arity.NONE, "EXISTS", ("exists",), None, lambda f, v, now: Exists(f)),
    Operator("not exists", Arity.NONE, negates="exists"),
    Operator("between", Arity.PAIR, "BETWEEN", ("between",), rule_order, _lower_between),
    Operator("not between", Arity.PAIR, negates="between"),
)

#: Every operator by its canonical name, in the order messages list them.
OPERATORS: dict[str, Operator] = {op.name: op for op in _TABLE}
#: Names the JSON form also accepts: every spelling of an operator's own symbol.
ALIASES: dict[str, str] = {s: op.name for op in _TABLE for s in op.spellings}


def operator(name: str, position: int | None = None) -> Operator:
    """The operator called ``name`` (any spelling, any case, words separated by any space)."""
    key = " ".join(str(name).lower().split())
    found = OPERATORS.get(ALIASES.get(key, key))
    if found is None:
        raise FilterError(f"unknown operator {name!r}: expected one of {', '.join(OPERATORS)}",
                          position=position)  # fmt: skip
    return found


def keywords() -> set[str]:
    """The words operators are typed with (a bare marker of that name needs ``markers.``)."""
    return {op.spellings[0] for op in _TABLE if op.is_keyword}


def grammar() -> str:
    """The operator rules and terminals of the filter grammar (``filter.lark`` uses
    ``op_none``, ``op_one``, ``op_list`` and ``op_pair``). Each alternative is aliased
    ``opx_<n>``: the ``n``-th operator of the table."""
    alternatives: dict[Arity, list[str]] = {arity: [] for arity in Arity}
    terminals: list[str] = []
    for n, op in enumerate(_TABLE):
        if op.token:
            alternatives[op.arity].append(f"{op.token} -> opx_{n}")
            if op.is_keyword:
                (word,) = op.spellings
                terminals.append(f"{op.token}.2: /{re.escape(word)}(?!\\w)/i")
            else:
                longest_first = sorted(op.spellings, key=len, reverse=True)
                terminals.append(f"{op.token}: " + " | ".join(map(json.dumps, longest_first)))
        else:
            alternatives[op.arity].append(f"_NOT {op.positive.token} -> opx_{n}")
    rules = [f"op_{arity.value}: " + "\n    | ".join(alts)
             for arity, alts in alternatives.items()]  # fmt: skip
    return "\n".join(rules + terminals) + "\n"


def by_alias(alias: str) -> Operator:
    """The operator of a grammar alias ``opx_<n>`` (see :func:`grammar`)."""
    return _TABLE[int(alias.removeprefix("opx_"))]


def token_names() -> dict[str, str]:
    """Grammar terminal → how people type it (for "expected …" messages), in table order."""
    return {op.token: op.name for op in _TABLE if op.token}


# -- checking and lowering one condition --------------------------------------------------------
def check_condition(cond: Condition) -> Condition:
    """The condition with its operator canonical and its values type-checked and normalised,
    or :class:`FilterError`."""
    op = operator(cond.op, cond.position)
    positive = op.positive
    value = cond.value
    if op.arity is Arity.NONE:
        if value is not None:
            raise FilterError(f"{op.name} takes no value", position=cond.value_position)
        new: Any = None
    elif op.arity is Arity.LIST:
        if not isinstance(value, tuple | list) or not value:
            raise FilterError(
                f"{cond.field} {op.name}: expected a list of values like (\"a\", \"b\")",
                position=cond.value_position,
            )
        if len(value) > MAX_IN_VALUES:
            raise FilterError(f"{op.name} takes at most {MAX_IN_VALUES} values",
                              position=cond.value_position)  # fmt: skip
        new = tuple(_rule(positive)(cond, op.name, v) for v in value)
    elif op.arity is Arity.PAIR:
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise FilterError(
                f"{cond.field} {op.name}: expected two values: {op.name} 1 and 10",
                position=cond.value_position,
            )
        new = tuple(_rule(positive)(cond, op.name, v) for v in value)
    else:
        new = _rule(positive)(cond, op.name, value)
    if op.name == cond.op and new == value and type(new) is type(value):
        return cond
    return replace(cond, op=op.name, value=new)


def _rule(op: Operator) -> ValueRule:
    assert op.rule is not None, f"operator {op.name} has no value rule"
    return op.rule


def lower_condition(cond: Condition, now: datetime) -> tuple[Pred, bool]:
    """The condition's positive primitive, and whether the operator negates it."""
    op = operator(cond.op, cond.position)
    positive = op.positive
    assert positive.lower is not None, f"operator {positive.name} has no meaning"
    return positive.lower(cond.field, cond.value, now), op.negates is not None
