"""``when`` conditions in the segment language, compiled once at load time and evaluated in
Python against a user (``relove.segments.parse_filter`` / ``matches``).

They see the user's columns and documents, not the event history: a ``did …`` condition is
refused when the scenario or catalog loads, rather than evaluated on missing data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relove.db.types import utcnow
from relove.errors import FilterError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    text: str
    tree: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Raises ``ValueError`` with the parser's reason (for pydantic validators)."""
        from relove.segments import parse_filter, uses_events

        try:
            tree = parse_filter(text)
        except FilterError as e:
            pos = f" at position {e.position}" if getattr(e, "position", None) else ""
            raise ValueError(f"invalid condition {text!r}{pos}: {e}") from None
        if uses_events(tree):
            raise ValueError(f"invalid condition {text!r}: did … reads the event history, which "
                             "scenario and catalog conditions do not see")  # fmt: skip
        return cls(text, tree)

    def matches(self, user: dict[str, Any], now: datetime | None = None) -> bool:
        """Whether the user qualifies; a condition that cannot be evaluated (e.g. it names a
        saved segment) counts as not met, and is logged."""
        from relove.segments import matches

        try:
            return bool(matches(self.tree, user, now=now or utcnow()))
        except Exception:
            log.exception("condition %r could not be evaluated", self.text)
            return False


def condition_or_none(value: Any) -> Condition | None:
    if value is None or isinstance(value, Condition):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a condition must be a non-empty filter text")
    return Condition.parse(value)
