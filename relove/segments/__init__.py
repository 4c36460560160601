"""Segments: one safe filter language shared by the CLI, the bot, broadcasts and analytics.

``parse_filter(text) -> FilterTree`` · ``compile_filter(text_or_tree, dialect=…)`` →
SQLAlchemy boolean expression with bound values · ``matches(tree, user_dict)`` the reference
evaluator · ``resolve_filter(session, text_or_tree)`` loads referenced saved segments.
"""

from relove.segments.compiler import compile_filter
from relove.segments.evaluator import matches
from relove.segments.jsonform import field_from_text
from relove.segments.lower import uses_events
from relove.segments.parser import parse_filter
from relove.segments.service import (
    count_users,
    delete_segment,
    find_user_ids,
    find_users,
    get_segment,
    list_segments,
    resolve_filter,
    save_segment,
)
from relove.segments.tree import (
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

__all__ = [
    "And",
    "Condition",
    "DateValue",
    "Did",
    "Field",
    "FilterTree",
    "Not",
    "Or",
    "RelativeDate",
    "SegmentRef",
    "compile_filter",
    "count_users",
    "delete_segment",
    "field_from_text",
    "find_user_ids",
    "find_users",
    "get_segment",
    "list_segments",
    "matches",
    "parse_filter",
    "resolve_filter",
    "save_segment",
    "uses_events",
]
