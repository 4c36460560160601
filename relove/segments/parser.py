"""Filter text → :class:`FilterTree`, with errors that name the position and what was expected."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from relove.errors import FilterError, InvalidKey
from relove.segments.lower import MAX_NESTING
from relove.segments.operators import by_alias, check_condition, token_names
from relove.segments.operators import grammar as operator_grammar
from relove.segments.tree import (
    COLUMNS,
    MAX_TIMES,
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
    parse_duration,
)
from relove.users.paths import parse_path, text_problem

MAX_FILTER_LENGTH = 10_000
_GRAMMAR = Path(__file__).with_name("filter.lark")

#: Readable names of the grammar's terminals, for "expected …" messages.
_OPERATOR_NAMES = token_names()
_EXPECTED = {
    "NAME": "a field",
    "KEY": "a key",
    "STRING": "a string",
    "NUMBER": "a number",
    "DATE": "a date",
    "RELATIVE": "a relative date",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    **_OPERATOR_NAMES,
    "_AND": "and",
    "_OR": "or",
    "_NOT": "not",
    "_SEGMENT": "segment",
    "_DID": "did",
    "_WHERE": "where",
    "_TIMES": "times",
    "_WITHIN": "within",
    "DURATION": "a duration like 7d",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "COLON": ":",
    "DOT": ".",
    "$END": "the end of the filter",
}
_OPERATOR_TERMINALS = set(_OPERATOR_NAMES)
_VALUE_TERMINALS = {"STRING", "NUMBER", "DATE", "RELATIVE", "TRUE", "FALSE"}
_ORDER = ["NAME", *_OPERATOR_NAMES, "STRING", "NUMBER", "DATE", "RELATIVE", "TRUE", "FALSE",
          "_AND", "_OR", "_NOT", "_WHERE", "_TIMES", "_WITHIN", "DURATION", "LPAR",
          "RPAR"]  # fmt: skip
#: "an operator (=, !=, <, …)": every operator with a word or symbol of its own.
_ANY_OPERATOR = "an operator (" + ", ".join(_OPERATOR_NAMES.values()) + ")"


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        _GRAMMAR.read_text(encoding="utf-8") + operator_grammar(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def unquote(token: str) -> str:
    """A JSON-style string literal (double or single quoted) → its text."""
    body = token[1:-1]
    if token[0] == "'":
        body = body.replace('\\"', '"').replace("\\'", "'").replace('"', '\\"')
    try:
        value = json.loads(f'"{body}"')
    except ValueError as e:
        raise FilterError(f"invalid escape in string {token}") from e
    return value


def _number(text: str) -> int | float:
    try:
        if any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value):
                raise FilterError(f"number {text} is out of range")
            return value
        return int(text)
    except ValueError as e:  # pragma: no cover - the grammar only lets numbers through
        raise FilterError(f"{text!r} is not a number") from e


def _pos(meta_or_token: Any) -> int | None:
    if isinstance(meta_or_token, Token):
        return (meta_or_token.start_pos or 0) + 1
    start = getattr(meta_or_token, "start_pos", None)
    return None if start is None else start + 1


class _Build(Transformer):
    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    # -- values --------------------------------------------------------------------------------
    def _value(self, tok: Token) -> Any:
        kind = tok.type
        if kind == "STRING":
            return unquote(tok)
        if kind == "NUMBER":
            return _number(tok)
        if kind == "TRUE":
            return True
        if kind == "FALSE":
            return False
        if kind == "DATE":
            return DateValue.parse(str(tok).replace(" ", "T"))
        if kind == "RELATIVE":
            return RelativeDate.parse(str(tok))
        if kind == "NULL":
            raise FilterError(
                "null is not a value here: use `exists` / `not exists`", position=_pos(tok)
            )
        raise FilterError(f"unexpected {tok!s}", position=_pos(tok))

    # -- fields --------------------------------------------------------------------------------
    @v_args(meta=True)
    def field(self, meta: Any, children: list[Token]) -> tuple[Field, int | None]:
        parts = [unquote(t) if t.type == "STRING" else str(t) for t in children]
        first = parts[0]
        head = first.lower()
        try:
            if len(parts) == 1 and first in COLUMNS:
                return Field(None, (first,)), _pos(meta)
            if len(parts) == 1 and head in ("markers", "context"):
                raise FilterError(f"{first} needs a key, e.g. {head}.city", position=_pos(meta))
            if head in ("markers", "context") and children[0].type == "NAME":
                return Field(head, parse_path(parts[1:])), _pos(meta)
            if first in COLUMNS:
                raise FilterError(
                    f"{first} is a column and has no keys inside", position=_pos(meta)
                )
            return Field("markers", parse_path(parts)), _pos(meta)
        except InvalidKey as e:
            raise FilterError(str(e), position=_pos(meta)) from e

    @v_args(meta=True)
    def prop_field(self, meta: Any, children: list[Token]) -> tuple[Field, int | None]:
        """A field inside ``did … where``: a path into the event's ``props`` (``props.`` may
        lead, for a key that is a keyword or not a plain name)."""
        parts = [unquote(t) if t.type == "STRING" else str(t) for t in children]
        if len(parts) > 1 and parts[0] == "props" and children[0].type == "NAME":
            parts = parts[1:]
        try:
            return Field("props", parse_path(parts)), _pos(meta)
        except InvalidKey as e:
            raise FilterError(str(e), position=_pos(meta)) from e

    # -- behaviour (did …) ---------------------------------------------------------------------
    @v_args(meta=True)
    def did(self, meta: Any, children: list[Any]) -> Did:
        name_tok, *rest = children
        parts: dict[str, Any] = dict(rest)
        op, count = parts.get("count", (">=", 1))
        return Did(unquote(name_tok), parts.get("where"), op, count, parts.get("within"),
                   position=_pos(meta))  # fmt: skip

    def did_where(self, children: list[Any]) -> tuple[str, FilterTree]:
        return "where", children[0]

    def did_op(self, children: list[Token]) -> str:
        return "!=" if str(children[0]) == "<>" else "=" if str(children[0]) == "==" else str(
            children[0])

    def did_count(self, children: list[Any]) -> tuple[str, tuple[str, int]]:
        op, tok = children
        text = str(tok)
        if not text.isdigit():
            raise FilterError(f"did … {op} {text} times: the count must be a whole number from 0",
                              position=_pos(tok))  # fmt: skip
        count = int(text)
        if count > MAX_TIMES:
            raise FilterError(f"did …: the count must be at most {MAX_TIMES}", position=_pos(tok))
        return "count", (op, count)

    def did_within(self, children: list[Token]) -> tuple[str, str]:
        (tok,) = children
        try:
            parse_duration(str(tok))
        except FilterError as e:
            raise FilterError(str(e), position=_pos(tok)) from e
        return "within", str(tok)

    # -- conditions ----------------------------------------------------------------------------
    def _cond(self, f: tuple[Field, int | None], op: str, value: Any, vtok: Any) -> Condition:
        cond = Condition(f[0], op, value, position=f[1], value_position=_pos(vtok))
        return check_condition(cond)

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        if isinstance(data, str) and data.startswith("opx_"):
            return by_alias(data).name  # an operator (see operators.grammar)
        return super().__default__(data, children, meta)

    def compare(self, children: list[Any]) -> Condition:
        f, op, vtok = children
        return self._cond(f, op, self._value(vtok), vtok)

    def in_list(self, children: list[Any]) -> Condition:
        f, op, *toks = children
        return self._cond(f, op, tuple(self._value(t) for t in toks), toks[0])

    def exists(self, children: list[Any]) -> Condition:
        f, op = children
        return self._cond(f, op, None, None)

    def between(self, children: list[Any]) -> Condition:
        f, op, lo, hi = children
        return self._cond(f, op, (self._value(lo), self._value(hi)), lo)

    def truthy(self, children: list[Any]) -> Condition:
        (f,) = children
        return self._cond(f, "=", True, None)

    def segment_ref(self, children: list[Token]) -> SegmentRef:
        (tok,) = children
        name = unquote(tok) if tok.type == "STRING" else str(tok)
        if not name.strip():
            raise FilterError("a segment name must not be empty", position=_pos(tok))
        problem = text_problem(name)
        if problem:
            raise FilterError(f"the segment name {problem}", position=_pos(tok))
        return SegmentRef(name, position=_pos(tok))

    # -- logic ---------------------------------------------------------------------------------
    def and_(self, children: list[FilterTree]) -> FilterTree:
        return children[0] if len(children) == 1 else And(tuple(children))

    def or_(self, children: list[FilterTree]) -> FilterTree:
        return children[0] if len(children) == 1 else Or(tuple(children))

    def not_(self, children: list[FilterTree]) -> FilterTree:
        return Not(children[0])


def parse_filter(text: str) -> FilterTree:
    """Parse a filter text; raises :class:`FilterError` with a 1-based ``position``.

    Trees are immutable, so the most recent parses are cached."""
    if not isinstance(text, str):
        raise FilterError("a filter must be text")
    return _parse_cached(text)


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> FilterTree:
    return _parse(text, _mark_where_fields)


def _parse(text: str, prepare: Callable[[Tree], Tree]) -> FilterTree:
    """Parse ``text``, let ``prepare`` adjust the raw tree, build the filter tree; every failure
    becomes one :class:`FilterError` naming the position."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"a filter must be at most {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise FilterError("the filter is empty", position=1)
    try:
        return check_nesting(_Build().transform(prepare(_parser().parse(text))))
    except VisitError as e:
        if isinstance(e.orig_exc, FilterError):
            err = e.orig_exc
            if err.position is not None and "position" not in str(err):
                raise FilterError(f"{err} (at position {err.position})",
                                  position=err.position) from None  # fmt: skip
            raise err from None
        raise FilterError(f"invalid filter: {e.orig_exc}") from e
    except UnexpectedInput as e:
        raise _syntax_error(text, e) from None
    except LarkError as e:  # pragma: no cover - defensive
        raise FilterError(f"invalid filter: {e}") from e
    except RecursionError:
        raise FilterError("the filter is nested too deeply") from None


def parse_props_filter(text: str) -> FilterTree:
    """A filter over one event's ``props`` (an automation trigger's ``where``): the language of
    ``did … where``, whose fields name the props (``key = "city"``, ``props.amount > 10``);
    ``did`` and ``segment:`` are refused. Errors name the position as :func:`parse_filter`'s."""
    if not isinstance(text, str):
        raise FilterError("a filter must be text")
    return _parse_props_cached(text)


@lru_cache(maxsize=256)
def _parse_props_cached(text: str) -> FilterTree:
    return _parse(text, _props_fields)


def _props_fields(tree: Tree) -> Tree:
    """Fields name the event's props; ``did`` and ``segment:`` are refused."""
    for node in tree.iter_subtrees():
        if node.data in ("did", "segment_ref"):
            what = "did" if node.data == "did" else "segment:"
            pos = _pos(node.meta)
            raise FilterError(f"{what} cannot be used here: the fields are the event's props "
                              f"(at position {pos})", position=pos)  # fmt: skip
        if node.data == "field":
            node.data = "prop_field"
    return tree


def _mark_where_fields(tree: Tree) -> Tree:
    """Fields inside ``did … where`` name the event's props: rename them ``prop_field`` (the
    grammar shares its conditions). A ``did`` or ``segment:`` inside a where is refused."""
    for where in tree.find_data("did_where"):
        for node in where.iter_subtrees():
            if node is where:
                continue
            if node.data in ("did", "segment_ref"):
                what = "did" if node.data == "did" else "segment:"
                pos = _pos(node.meta)
                raise FilterError(f"{what} cannot be used inside did … where: its fields are the "
                                  f"event's props (at position {pos})", position=pos)  # fmt: skip
            if node.data == "field":
                node.data = "prop_field"
    return tree


def check_nesting(tree: FilterTree) -> FilterTree:
    """``tree`` if its and / or / not nest at most ``MAX_NESTING`` levels (counted without
    recursion, so any depth is measured safely); a ``did … where`` counts one level."""
    pending: list[tuple[FilterTree, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, Did):
            if node.where is not None:
                pending.append((node.where, depth + 1))
            continue
        if isinstance(node, And | Or | Not):
            if depth >= MAX_NESTING:
                raise FilterError(f"the filter is nested too deeply: more than {MAX_NESTING} "
                                  "levels of and / or / not")  # fmt: skip
            items = (node.item,) if isinstance(node, Not) else node.items
            pending.extend((i, depth + 1) for i in items)
    return tree


def _expected(names: set[str]) -> str:
    if names & _OPERATOR_TERMINALS and len(names & _OPERATOR_TERMINALS) >= 6:
        rest = [_EXPECTED[n] for n in _ORDER if n in names and n not in _OPERATOR_TERMINALS]
        return _ANY_OPERATOR + (" or " + ", ".join(rest) if rest else "")
    if names == {"STRING"}:
        return 'an event name in quotes, like "message.received"'
    if names and names <= _VALUE_TERMINALS | {"NULL", "LPAR"} and names & _VALUE_TERMINALS:
        return "a value (a string in quotes, a number, true, false, a date or -30d)"
    known = [_EXPECTED[n] for n in _ORDER if n in names]
    known += sorted(_EXPECTED.get(n, n) for n in names if n not in _ORDER)
    known = list(dict.fromkeys(known))
    if not known:
        return "something else"
    return known[0] if len(known) == 1 else ", ".join(known[:-1]) + " or " + known[-1]


def _show(text: str, pos: int) -> str:
    tail = text[pos : pos + 20]
    return repr(tail.split()[0]) if tail.split() else "the end of the filter"


def _syntax_error(text: str, e: UnexpectedInput) -> FilterError:
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream
        assert pos is not None  # always set for UnexpectedCharacters (lark types it Optional)
        ch = text[pos]
        if ch in "\"'":
            return FilterError(f"unclosed string at position {pos + 1}", position=pos + 1)
        allowed = {n for n in e.allowed} if e.allowed else set()
        return FilterError(
            f"unexpected {ch!r} at position {pos + 1}: expected {_expected(allowed)}",
            position=pos + 1,
        )
    if isinstance(e, UnexpectedEOF):
        names: set[str] = set(e.expected)
        return FilterError(
            f"unexpected end of the filter at position {len(text) + 1}: "
            f"expected {_expected(names)}",
            position=len(text) + 1,
        )
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    names = set(e.accepts or e.expected)
    if tok.type == "$END":
        return FilterError(
            f"unexpected end of the filter at position {len(text) + 1}: "
            f"expected {_expected(names)}",
            position=len(text) + 1,
        )
    pos = (tok.start_pos or 0) + 1
    what = repr(str(tok))
    if names & _OPERATOR_TERMINALS and tok.type in ("NAME", "KEY"):
        what = f"unknown operator {what}"
    else:
        what = f"unexpected {what}"
    return FilterError(f"{what} at position {pos}: expected {_expected(names)}", position=pos)
