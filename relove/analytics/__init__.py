"""Analytics over users, computed in SQL: overview, breakdowns, activity."""

from relove.analytics.service import (
    Activity,
    Breakdown,
    BreakdownRow,
    Overview,
    activity,
    breakdown,
    new_per_day,
    overview,
)

__all__ = [
    "Activity",
    "Breakdown",
    "BreakdownRow",
    "Overview",
    "activity",
    "breakdown",
    "new_per_day",
    "overview",
]
