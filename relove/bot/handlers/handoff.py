"""Live-chat handoff (see :mod:`relove.conversation.handoff`): while an operator talks to a
user from the console, a message from that user gets no automatic answer — it is kept in the
conversation (``context.turns``) for the operator to read. Commands still work."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.config import Settings
from relove.conversation.handoff import in_handoff
from relove.db.models import UserSnapshot
from relove.db.types import utcnow
from relove.users.service import append_bounded

MAX_TURN_CHARS = 1500


async def handed_off(message: Message, user: UserSnapshot | None = None) -> bool:
    return user is not None and in_handoff(user.context, utcnow())


async def hold(message: Message, user: UserSnapshot, session: AsyncSession,
               settings: Settings) -> None:
    """An operator is answering this user: the bot says nothing, the message is kept."""
    text = message.text or message.caption
    if not text:
        return
    turn = {"role": "user", "text": text[:MAX_TURN_CHARS],
            "at": utcnow().isoformat(timespec="seconds")}
    await append_bounded(session, user.id, "turns", turn, keep=settings.history_turns)


def create_router() -> Router:
    router = Router(name="handoff")
    router.message.register(hold, F.chat.type == "private", ~F.text.startswith("/"), handed_off)
    return router
