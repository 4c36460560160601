"""Outer middleware: every update that carries a user refreshes that user first.

The polling pipeline (:mod:`relove.bot.ingest`) touches a whole page of updates before it
dispatches them and passes each update's ``user``; the middleware then has nothing to do. An
update fed straight to the dispatcher (tests, a webhook) is touched here, one at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TgUser

from relove.events.updates import event_rows_of_update
from relove.users.touch import Touch, TouchWriter

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def touch_from_update(
    update: Update, from_user: TgUser | None, *, events: bool = False
) -> Touch | None:
    """What ``update`` says about its (human) user, or ``None`` if it carries none; with
    ``events``, the touch also carries the update's events (``relove.events.updates``)."""
    if from_user is None or from_user.is_bot:
        return None
    last_message = None
    is_active = None
    message = update.message
    if message is not None:
        last_message = message.text if message.text is not None else message.caption
        # Writing to the bot in private means the user has (re)started it: a first /start
        # sends no my_chat_member, and a user marked inactive by a broadcast's 403 is back.
        if message.chat.type == "private":
            is_active = True
    query = update.callback_query
    if query is not None and query.message is not None and query.message.chat.type == "private":
        is_active = True
    member = update.my_chat_member
    if member is not None and member.chat.type == "private":
        status = member.new_chat_member.status
        if status == "kicked":
            is_active = False
        elif status == "member":
            is_active = True
    return Touch(
        from_user.id,
        from_user.username,
        from_user.first_name,
        from_user.last_name,
        last_message,
        is_active,
        event_rows=event_rows_of_update(update) if events else (),
    )


class TouchMiddleware(BaseMiddleware):
    """Upserts the update's user (one batched atomic statement) and passes it on as ``user``."""

    def __init__(self, writer: TouchWriter) -> None:
        self.writer = writer

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if "user" not in data:  # not touched by the polling pipeline yet
            touch = touch_from_update(
                event, data.get("event_from_user"), events=self.writer.records_events
            )
            if touch is not None:
                data["user"] = await self.writer.touch(touch)
        return await handler(event, data)
