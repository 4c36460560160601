"""Live-chat handoff: while an operator talks to a user from the console, the companion and the
scripted fallback stay silent for that user (``context.handoff_until``, set by the console for
``RELOVE_HANDOFF_MINUTES`` after each operator message). Commands still work. The message is
recorded as usual by the touch; the operator reads it in the console."""

from __future__ import annotations

from datetime import datetime

from aiogram import F, Router
from aiogram.types import Message

from relove.db.models import UserSnapshot
from relove.db.types import utcnow

HANDOFF_KEY = "handoff_until"


def handoff_until(context: object) -> datetime | None:
    """The end of the user's handoff, from their context (None: not handed off)."""
    raw = context.get(HANDOFF_KEY) if hasattr(context, "get") else None
    if not isinstance(raw, str):
        return None
    try:
        until = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return until if until.tzinfo is not None else None


async def in_handoff(message: Message, user: UserSnapshot | None = None) -> bool:
    if user is None:
        return False
    until = handoff_until(user.context)
    return until is not None and until > utcnow()


async def hold(message: Message) -> None:
    """An operator is answering this user: the bot says nothing."""


def create_router() -> Router:
    router = Router(name="handoff")
    router.message.register(hold, F.chat.type == "private", ~F.text.startswith("/"), in_handoff)
    return router
