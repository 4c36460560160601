"""Live-chat handoff: while an operator talks to a user from the console, the companion and the
scripted fallback stay silent for that user. The console writes ``context.handoff_until`` (an
ISO timestamp, ``RELOVE_HANDOFF_MINUTES`` after each operator message); the bot's handoff
router reads it from the user's snapshot (no extra query)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

HANDOFF_KEY = "handoff_until"


def handoff_until(context: Mapping[str, Any]) -> datetime | None:
    """The end of the user's handoff (None: not handed off)."""
    raw = context.get(HANDOFF_KEY)
    if not isinstance(raw, str):
        return None
    try:
        until = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return until if until.tzinfo is not None else None


def in_handoff(context: Mapping[str, Any], now: datetime) -> bool:
    until = handoff_until(context)
    return until is not None and until > now
