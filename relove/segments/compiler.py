"""Filter → SQLAlchemy boolean expression with bound values, for PostgreSQL and SQLite.

Nothing a person typed becomes SQL text: values, JSON paths and patterns are all bound
parameters. Every primitive compiles to a two-valued expression (never SQL NULL), so ``not``
is the exact complement on both databases. On PostgreSQL, equality and list membership on a
document compile to containment (``markers @> '{"city": "Москва"}'``), which the GIN index on
``markers`` serves; typed comparisons are guarded by ``CASE WHEN jsonb_typeof(…) = 'number'``
so a cast can never fail on a value of another type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Numeric,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from relove.db.models import User
from relove.db.types import utcnow
from relove.errors import FilterError
from relove.events.models import Event
from relove.segments.lower import lower
from relove.segments.parser import parse_filter
from relove.segments.primitives import (
    Cmp,
    Contains,
    DidAtLeast,
    Exists,
    IContains,
    In,
    Leaf,
    PAnd,
    PNot,
    POr,
    Pred,
    Regex,
)
from relove.segments.tree import NULLABLE_COLUMNS, Field, FilterTree

DIALECTS = ("postgresql", "sqlite")
#: Name of the Unicode-aware ``lower()`` registered on every SQLite connection.
SQLITE_LOWER = "relove_lower"


def as_tree(text_or_tree: str | FilterTree | Mapping[str, Any]) -> FilterTree:
    if isinstance(text_or_tree, FilterTree):
        return text_or_tree
    if isinstance(text_or_tree, str):
        return parse_filter(text_or_tree)
    if isinstance(text_or_tree, Mapping):
        return FilterTree.from_json(dict(text_or_tree))
    raise FilterError(f"expected a filter text, tree or JSON object, got {type(text_or_tree)}")


def compile_filter(
    text_or_tree: str | FilterTree | Mapping[str, Any],
    *,
    dialect: str,
    segments: Mapping[str, FilterTree] | None = None,
    now: datetime | None = None,
) -> ColumnElement[bool]:
    """A boolean expression over ``User`` for ``select(User.id).where(...)``.

    ``segments`` maps saved-segment names to their trees (see :func:`resolve_filter`);
    relative dates resolve against ``now`` (default: the current time).
    """
    name = getattr(dialect, "name", dialect)
    if name not in DIALECTS:
        raise ValueError(f"unsupported dialect {name!r}; expected one of {DIALECTS}")
    pred = lower(as_tree(text_or_tree), now=now or utcnow(), segments=segments)
    return _Compiler(name == "postgresql").compile(pred)


#: Core columns: cheaper to build expressions on than the ORM-instrumented attributes.
_TABLE: Any = User.__table__
_EVENTS: Any = Event.__table__




def pg_extract(doc: Any, path: tuple[str, ...], *, as_text: bool = False) -> Any:
    """A document path on PostgreSQL: ``doc -> 'key'`` (``->>`` as text) for a top-level key,
    ``doc #> '{a,b}'`` (``#>>``) for a nested one. ``->`` skips unpacking a path array per row
    (measurably faster over 1M rows); both are NULL when the key is missing."""
    if len(path) == 1:
        op, key = ("->>" if as_text else "->"), literal(path[0], Text())
    else:
        op, key = ("#>>" if as_text else "#>"), literal(list(path), ARRAY(Text()))
    return doc.op(op, return_type=Text if as_text else JSONB)(key)


def _number(v: int | float) -> Decimal:
    return Decimal(v) if isinstance(v, int) else Decimal(repr(v))


def _op(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    if op == "=":
        return left == right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    raise FilterError(f"unknown comparison {op!r}")


def _nest(path: tuple[str, ...], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


def _merge_into(target: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
    """Add ``path = value`` to a containment object; False on a conflict (then kept apart)."""
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


#: SQLite parses ``a OR b OR c …`` into a tree as deep as the chain and refuses one deeper than
#: 1,000; long chains are grouped into a balanced tree of this fan-out instead.
_SQLITE_FANOUT = 8


class _Parens(ColumnElement[bool]):
    """``(expr)``, kept as written: SQLAlchemy's own grouping is dropped inside a chain of the
    same operator, and that nesting is the point here."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    _traverse_internals = [("element", InternalTraversal.dp_clauseelement)]

    def __init__(self, element: ColumnElement[bool]) -> None:
        self.element = element


@compiles(_Parens)
def _compile_parens(element: _Parens, compiler: Any, **kw: Any) -> str:
    return "(" + compiler.process(element.element, **kw) + ")"


def _balanced(
    combine: Callable[..., ColumnElement[bool]], exprs: Sequence[ColumnElement[bool]]
) -> ColumnElement[bool]:
    if len(exprs) <= _SQLITE_FANOUT:
        return combine(*exprs)
    size = -(-len(exprs) // _SQLITE_FANOUT)
    groups = [_Parens(_balanced(combine, exprs[i : i + size]))
              for i in range(0, len(exprs), size)]  # fmt: skip
    return combine(*groups)


def _json_list(values: Sequence[Any]) -> Any:
    """``(SELECT value FROM json_each(:values))``: a list of any length as ONE bound JSON array
    (SQLite; PostgreSQL binds the list itself)."""
    each = func.json_each(literal(json.dumps(list(values), ensure_ascii=False), Text()))
    return select(each.table_valued("value").c.value)


class _Compiler:
    def __init__(self, pg: bool) -> None:
        self.pg = pg
        #: The events alias of the ``did`` being compiled (its where-clause reads ``props``).
        self.events: Any = None

    def _document(self, name: str | None) -> Any:
        """The JSON column a field names: ``markers`` / ``context`` of users, or ``props`` of
        the event a ``did … where`` looks at."""
        assert name is not None, "a column is not a document"
        if name == "props":
            assert self.events is not None, "props are read only inside did … where"
            return self.events.c.props
        return _TABLE.c[name]

    def _combine(
        self, combine: Callable[..., ColumnElement[bool]], exprs: Sequence[ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        return combine(*exprs) if self.pg else _balanced(combine, exprs)

    def compile(self, p: Pred) -> ColumnElement[bool]:
        if isinstance(p, PAnd):
            items = self._merge_containments(p.items) if self.pg else list(p.items)
            return self._combine(and_, [i if isinstance(i, ColumnElement) else self.compile(i)
                                        for i in items])  # fmt: skip
        if isinstance(p, POr):
            return self._combine(or_, [self.compile(i) for i in p.items])
        if isinstance(p, PNot):
            return not_(self.compile(p.item))
        if isinstance(p, DidAtLeast):
            return self._did(p)
        if not isinstance(p, Leaf):
            raise FilterError(f"unsupported predicate {p!r}")
        f = p.field
        if f.doc is None:
            return self._column(p, f)
        return self._pg(p, f) if self.pg else self._sqlite(p, f)

    def _merge_containments(self, items: tuple[Pred, ...]) -> list[Any]:
        """``a = 1 and b = 2`` on one document → ONE containment ``doc @> {"a": 1, "b": 2}``
        (the same meaning: object containment is checked key by key), one GIN lookup."""
        merged: dict[str, dict[str, Any]] = {}
        rest: list[Any] = []
        for item in items:
            if isinstance(item, Cmp) and item.op == "=" and item.field.doc is not None:
                target = merged.setdefault(item.field.doc, {})
                if _merge_into(target, item.field.path, item.value):
                    continue
            rest.append(item)
        out: list[Any] = []
        for doc_name, obj in merged.items():
            if obj:
                doc: Any = self._document(doc_name)
                out.append(doc.op("@>", return_type=Boolean)(literal(obj, JSONB())))
        return out + rest

    # -- behaviour -----------------------------------------------------------------------------
    def _did(self, p: DidAtLeast) -> ColumnElement[bool]:
        """At least once: ``EXISTS (SELECT 1 FROM events WHERE user_id = users.id AND name =
        :event [AND at >= :since] [AND <where on props>])`` — PostgreSQL runs it as a semi-join
        (over ``(name, at)`` for a whole audience, or probing ``(user_id, at)`` per user).

        At least N times (N ≥ 2): ``EXISTS (SELECT 1 FROM (SELECT user_id FROM events WHERE …
        GROUP BY user_id HAVING count(*) >= N) AS g WHERE g.user_id = users.id)``: the events in
        the window are counted once for everyone (a hash semi-join, or an anti-join under
        ``not``), instead of one counting probe per user (measured: 1M probes take minutes)."""
        if p.count == 0:
            return true()
        # An alias of its own: the filter may sit inside a query over ``events`` (analytics).
        e = _EVENTS.alias("did_events")
        conds = [e.c.name == literal(p.event, Text())]
        if p.since is not None:
            conds.append(e.c.at >= p.since)
        if p.where is not None:
            self.events = e
            try:
                conds.append(self.compile(p.where))
            finally:
                self.events = None
        if p.count == 1:
            sub = select(literal(1)).select_from(e).where(e.c.user_id == _TABLE.c.id, *conds)
            return sub.correlate(_TABLE).exists()
        counted = (
            select(e.c.user_id)
            .where(e.c.user_id.is_not(None), *conds)
            .group_by(e.c.user_id)
            .having(func.count() >= p.count)
            .subquery("did_counts")
        )
        sub = select(literal(1)).select_from(counted).where(counted.c.user_id == _TABLE.c.id)
        return sub.correlate(_TABLE).exists()

    # -- columns -------------------------------------------------------------------------------
    def _lower(self, expr: Any) -> Any:
        return func.lower(expr) if self.pg else getattr(func, SQLITE_LOWER)(expr)

    def _substring(self, haystack: Any, needle: Any) -> ColumnElement[bool]:
        fn = func.strpos if self.pg else func.instr
        return fn(haystack, needle) > 0

    def _regex(self, expr: Any, pattern: str) -> ColumnElement[bool]:
        bound = literal(pattern, Text())
        return expr.op("~*" if self.pg else "REGEXP", return_type=Boolean)(bound)

    def _column(self, p: Pred, f: Field) -> ColumnElement[bool]:
        name = f.path[0]
        col: Any = _TABLE.c[name]
        if isinstance(p, Exists):
            return col.is_not(None) if name in NULLABLE_COLUMNS else true()
        if isinstance(p, Cmp):
            left = col
            if self.pg and f.kind == "text" and p.op != "=":
                left = col.collate("C")
            expr = _op(left, p.op, p.value)
        elif isinstance(p, In):
            expr = col.in_(list(p.values) if self.pg else _json_list(p.values))
        elif isinstance(p, Contains):
            expr = self._substring(col, literal(p.value, Text()))
        elif isinstance(p, IContains):
            expr = self._substring(self._lower(col), self._lower(literal(p.value, Text())))
        elif isinstance(p, Regex):
            expr = self._regex(col, p.pattern)
        else:
            raise FilterError(f"unsupported predicate {p!r}")
        return and_(col.is_not(None), expr) if name in NULLABLE_COLUMNS else expr

    # -- PostgreSQL documents ------------------------------------------------------------------
    def _pg(self, p: Pred, f: Field) -> ColumnElement[bool]:
        doc: Any = self._document(f.doc)

        def value_text() -> Any:
            return pg_extract(doc, f.path, as_text=True)

        def contained(value: Any) -> ColumnElement[bool]:
            return doc.op("@>", return_type=Boolean)(literal(_nest(f.path, value), JSONB()))

        def when(type_name: str, expr: Any) -> ColumnElement[bool]:
            typ = func.jsonb_typeof(pg_extract(doc, f.path), type_=Text)
            return case((typ == type_name, expr), else_=false())

        if isinstance(p, Exists):
            typ = func.jsonb_typeof(pg_extract(doc, f.path), type_=Text)
            return func.coalesce(typ, "null") != "null"
        if isinstance(p, Cmp):
            v = p.value
            if p.op == "=":
                return contained(v)
            if isinstance(v, str):
                return when("string", _op(value_text().collate("C"), p.op, literal(v, Text())))
            return when("number", _op(cast(value_text(), Numeric), p.op,
                                      literal(_number(v), Numeric())))  # fmt: skip
        if isinstance(p, In):
            # One containment per value: each is served by the GIN index on the document.
            return or_(*(contained(v) for v in p.values))
        if isinstance(p, Contains):
            member = contained([p.value])
            if isinstance(p.value, str):
                return or_(member, when("string", self._substring(value_text(),
                                                                  literal(p.value, Text()))))
            return member
        if isinstance(p, IContains):
            needle = self._lower(literal(p.value, Text()))
            return when("string", self._substring(self._lower(value_text()), needle))
        if isinstance(p, Regex):
            return when("string", self._regex(value_text(), p.pattern))
        raise FilterError(f"unsupported predicate {p!r}")

    # -- SQLite documents ----------------------------------------------------------------------
    def _sqlite(self, p: Pred, f: Field) -> ColumnElement[bool]:
        doc: Any = self._document(f.doc)
        path = literal("$" + "".join(f'."{k}"' for k in f.path), Text())
        typ = func.json_type(doc, path, type_=Text)
        value = func.json_extract(doc, path)

        def typ_is(*names: str) -> ColumnElement[bool]:
            if len(names) == 1:
                return func.coalesce(typ, "") == names[0]
            return func.coalesce(typ, "").in_(names)

        def typed(v: Any) -> ColumnElement[bool]:
            if isinstance(v, bool):
                return typ_is("true" if v else "false")
            if isinstance(v, str):
                return typ_is("text")
            return typ_is("integer", "real")

        if isinstance(p, Exists):
            return func.coalesce(typ, "null") != "null"
        if isinstance(p, Cmp):
            v = p.value
            if isinstance(v, bool):
                return typed(v)
            return and_(typed(v), _op(value, p.op, literal(v)))
        if isinstance(p, In):
            strings = [v for v in p.values if isinstance(v, str)]
            numbers = [v for v in p.values if not isinstance(v, str)]
            parts = [and_(typ_is(*names), value.in_(_json_list(vs)))
                     for names, vs in ((("text",), strings), (("integer", "real"), numbers))
                     if vs]  # fmt: skip
            return or_(*parts)
        if isinstance(p, Contains):
            v = p.value
            each = func.json_each(doc, path).table_valued("value", "type")
            if isinstance(v, bool):
                elem = each.c.type == ("true" if v else "false")
            elif isinstance(v, str):
                elem = and_(each.c.type == "text", each.c.value == literal(v, Text()))
            else:
                elem = and_(each.c.type.in_(("integer", "real")), each.c.value == literal(v))
            member = and_(typ_is("array"), exists(select(literal(1)).select_from(each)
                                                  .where(elem)))  # fmt: skip
            if isinstance(v, str):
                return or_(member, and_(typ_is("text"),
                                        self._substring(value, literal(v, Text()))))
            return member
        if isinstance(p, IContains):
            needle = self._lower(literal(p.value, Text()))
            return and_(typ_is("text"), self._substring(self._lower(value), needle))
        if isinstance(p, Regex):
            return and_(typ_is("text"), self._regex(value, p.pattern))
        raise FilterError(f"unsupported predicate {p!r}")


__all__ = ["DIALECTS", "as_tree", "compile_filter", "pg_extract"]
