"""Lowering: a filter tree → primitive predicates (:mod:`relove.segments.primitives`).

Conditions lower through their operator (:mod:`relove.segments.operators`); ``and``/``or``/
``not`` map one to one; ``segment:"name"`` inlines the saved segment's tree. Dates resolve
here: relative ones against ``now``; a date without a time stands for the whole UTC day
(``created_at = 2026-01-31`` is that day, ``<= 2026-01-31`` includes it). On markers, dates
compare as ISO-8601 text.

Limits, checked while lowering — so at save time and at every use, before any SQL:

* a filter reaches saved segments at most :data:`MAX_SEGMENT_DEPTH` references deep
  (``segment:"a"`` where ``a`` uses ``b`` and ``b`` uses ``c``: three), without a cycle;
* after inlining, a filter holds at most :data:`MAX_TERMS` comparisons (each value of an ``in``
  list counts) and nests ``and``/``or``/``not`` at most :data:`MAX_NESTING` levels deep.

The budget is spent as the tree expands, so a chain that doubles at every level
(``s2 = segment:"s1" or segment:"s1"`` …) is refused after at most :data:`MAX_TERMS` steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from relove.errors import FilterError
from relove.segments.operators import lower_condition
from relove.segments.primitives import DidAtLeast, PAnd, PNot, POr, Pred, weight
from relove.segments.tree import And, Condition, Did, FilterTree, Not, Or, SegmentRef

#: References deep a filter reaches through saved segments using saved segments.
MAX_SEGMENT_DEPTH = 10
#: Comparisons in one filter after saved segments are inlined (an ``in`` value counts one).
MAX_TERMS = 2000
#: Nesting of and / or / not, saved segments inlined.
MAX_NESTING = 64


class _Lowering:
    def __init__(self, now: datetime, segments: Mapping[str, FilterTree] | None) -> None:
        self.now = now
        self.segments = segments
        self.terms = 0
        #: Lowering the where-clause of a ``did`` (its fields are the event's props).
        self.in_where = False

    def spend(self, terms: int, stack: tuple[str, ...]) -> None:
        self.terms += terms
        if self.terms > MAX_TERMS:
            raise FilterError(
                f"the filter is too large: more than {MAX_TERMS} comparisons"
                + (" once its saved segments are included" if stack else "")
            )

    def lower(self, tree: FilterTree, stack: tuple[str, ...], depth: int) -> Pred:
        if isinstance(tree, Condition):
            if (tree.field.doc == "props") != self.in_where:
                raise FilterError(
                    f"{tree.field.to_text()}: event props are named only inside did … where"
                    if not self.in_where else
                    f"{tree.field.to_text()}: inside did … where, fields are the event's props"
                )  # fmt: skip
            pred, negated = lower_condition(tree, self.now)
            self.spend(_weight(pred), stack)
            return PNot(pred) if negated else pred
        if depth >= MAX_NESTING:
            raise FilterError(
                f"the filter is nested too deeply: more than {MAX_NESTING} levels of "
                "and / or / not" + (" once its saved segments are included" if stack else "")
            )
        if isinstance(tree, And):
            return PAnd(tuple(self.lower(i, stack, depth + 1) for i in tree.items))
        if isinstance(tree, Or):
            return POr(tuple(self.lower(i, stack, depth + 1) for i in tree.items))
        if isinstance(tree, Not):
            return PNot(self.lower(tree.item, stack, depth + 1))
        if self.in_where and isinstance(tree, SegmentRef | Did):
            raise FilterError("did … where: its fields are the event's props; a segment or "
                              "another did cannot be used inside")  # fmt: skip
        if isinstance(tree, SegmentRef):
            return self.segment(tree, stack, depth)
        if isinstance(tree, Did):
            return self.did(tree, stack, depth)
        raise FilterError(f"not a filter: {tree!r}")

    def did(self, tree: Did, stack: tuple[str, ...], depth: int) -> Pred:
        """``did`` as at-least counts: ``< 5`` is not at-least-5, ``= 5`` at-least-5 and not
        at-least-6, so ``0 times`` / ``< N`` also match users without any such event."""
        where = None
        if tree.where is not None:
            self.in_where = True
            try:
                where = self.lower(tree.where, stack, depth + 1)
            finally:
                self.in_where = False
        duration = tree.duration
        since = None if duration is None else self.now - duration
        op, n = tree.op, tree.count
        self.spend(2 if op in ("=", "!=") else 1, stack)

        def at_least(k: int) -> Pred:
            return DidAtLeast(tree.event, where, since, k)

        if op == ">=":
            return at_least(n)
        if op == ">":
            return at_least(n + 1)
        if op == "<":
            return PNot(at_least(n))
        if op == "<=":
            return PNot(at_least(n + 1))
        exactly = PAnd((at_least(n), PNot(at_least(n + 1))))
        return exactly if op == "=" else PNot(exactly)

    def segment(self, ref: SegmentRef, stack: tuple[str, ...], depth: int) -> Pred:
        if ref.name in stack:
            chain = " → ".join([*stack, ref.name])
            raise FilterError(f"segment {ref.name!r} refers to itself ({chain})",
                              position=ref.position)  # fmt: skip
        if self.segments is None or ref.name not in self.segments:
            raise FilterError(f"unknown segment {ref.name!r}", position=ref.position)
        if len(stack) >= MAX_SEGMENT_DEPTH:
            chain = " → ".join([*stack[:3], "…", *stack[-2:], ref.name])
            raise FilterError(
                f"saved segments refer to each other more than {MAX_SEGMENT_DEPTH} levels "
                f"deep ({chain})",
                position=ref.position,
            )
        return self.lower(self.segments[ref.name], (*stack, ref.name), depth)


def _weight(p: Pred) -> int:
    if isinstance(p, PAnd | POr):
        return sum(_weight(i) for i in p.items)
    if isinstance(p, PNot):
        return _weight(p.item)
    return weight(p)


def lower(
    tree: FilterTree,
    *,
    now: datetime,
    segments: Mapping[str, FilterTree] | None = None,
    _stack: tuple[str, ...] = (),
) -> Pred:
    """``tree`` as primitives; saved segments referenced by name are inlined from ``segments``
    (``_stack``: the saved segment being defined, when checking one before saving it)."""
    return _Lowering(now, segments).lower(tree, _stack, 0)


def lower_props(tree: FilterTree, *, now: datetime) -> Pred:
    """A filter over one event's props (:func:`relove.segments.parser.parse_props_filter`)
    as primitives; evaluate it on ``{"props": props}``."""
    lowering = _Lowering(now, None)
    lowering.in_where = True
    return lowering.lower(tree, (), 0)


def uses_events(tree: FilterTree) -> bool:
    """Whether the tree has a ``did …`` condition (it reads the users' events)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, Did):
            return True
        if isinstance(node, And | Or):
            pending.extend(node.items)
        elif isinstance(node, Not):
            pending.append(node.item)
    return False


def segment_names(tree: FilterTree) -> set[str]:
    """Names of the saved segments a tree refers to directly."""
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, SegmentRef):
            names.add(node.name)
        elif isinstance(node, And | Or):
            pending.extend(node.items)
        elif isinstance(node, Not):
            pending.append(node.item)
    return names
