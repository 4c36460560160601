"""Live chat: an operator writes to a user as the bot from the console.

The message is plain text (escaped for Telegram HTML), sent through the console's bot sender
(the bot's rate limits apply; an operator may send ``RELOVE_CONSOLE_CHAT_PER_MINUTE`` per
minute). After it was sent, one transaction records it: a ``message.sent`` event with the
operator as actor and the message in the conversation (``messages``, direction ``out``, kind
``operator``), the companion's memory (``context.turns``, so its next answer knows what the
operator said), and the handoff: the companion stays silent for that user until
``now + RELOVE_HANDOFF_MINUTES`` (``context.handoff_until``, read by the bot's handoff router).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.broadcasts.content import RenderedMessage
from relove.conversation.handoff import HANDOFF_KEY
from relove.errors import InvalidInput
from relove.events.conversation import record_outgoing
from relove.telegram.outcomes import Outcome
from relove.users import service
from relove.users.lifecycle import get_user
from relove.web.audit import SOURCE, actor_of
from relove.web.telegram import ConsoleBot

MAX_CHARS = 4000


class NotDelivered(InvalidInput):
    """Telegram did not take the message (the text says why)."""


@dataclass(frozen=True)
class Sent:
    message_id: int | None
    handoff_until: datetime


async def send_as_bot(
    sessions: async_sessionmaker[AsyncSession],
    bot: ConsoleBot | None,
    user_id: int,
    text: str,
    *,
    admin_id: int,
    handoff_minutes: int,
    keep_turns: int,
    now: datetime,
) -> Sent:
    text = text.strip()
    if not text:
        raise InvalidInput("the message is empty")
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"the message is longer than {MAX_CHARS} characters")
    if bot is None:
        raise InvalidInput("no bot token is configured (RELOVE_BOT_TOKEN): nothing can be sent")
    async with sessions() as session:
        user = await get_user(session, user_id)
        if not user.is_active:
            raise NotDelivered(f"user {user_id} has blocked the bot")
    result = await bot.send(user_id, RenderedMessage(html.escape(text, quote=False), None,
                                                     None, ()))
    if result.outcome is not Outcome.sent:
        raise NotDelivered(f"not delivered: {result.error or result.outcome.value}")
    until = now + timedelta(minutes=handoff_minutes)
    turn = {"role": "assistant", "text": text, "at": now.isoformat(timespec="seconds"),
            "by": f"admin:{admin_id}"}
    async with sessions.begin() as session:
        await record_outgoing(session, user_id, text, message_id=result.message_id,
                              kind="operator", source=SOURCE, actor=actor_of(admin_id))
        await service.append_bounded(session, user_id, "turns", turn, keep=keep_turns)
        if handoff_minutes:
            await service.set_values(session, user_id,
                                     {HANDOFF_KEY: until.isoformat(timespec="seconds")},
                                     doc="context")
    return Sent(result.message_id, until)
