"""One database session per update, and no transaction left open while the bot talks to Telegram.

``DbSessionMiddleware`` (inner, on updates) opens the update's session and commits it after the
handler. ``CommitBeforeSend`` (a request middleware on the bot's session) commits that session's
open transaction before every Bot API call the update makes, so no row lock (PostgreSQL) or
write lock (SQLite) is held across a network round trip, a rate-limit wait or a 429 pause —
other users' updates never queue behind a reply. Writes made before a reply are therefore
durable even if the handler fails afterwards.

This is the bot's side of the unit-of-work rule (:mod:`relove.db.uow`): services and read
helpers never commit; a handler commits or rolls back only in its own body; a unit that reads
before it writes calls ``begin_write`` first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_update_session: ContextVar[AsyncSession | None] = ContextVar("relove_update_session", default=None)


class DbSessionMiddleware(BaseMiddleware):
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        # The session connects lazily: an update whose handler never touches it costs nothing.
        async with self.session_factory() as session:
            token = _update_session.set(session)
            try:
                data["session"] = session
                result = await handler(event, data)
                if session.in_transaction():
                    await session.commit()
                return result
            finally:
                _update_session.reset(token)


class CommitBeforeSend(BaseRequestMiddleware):
    """Commits the current update's open transaction before each outgoing Bot API call."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        session = _update_session.get()
        if session is not None and session.in_transaction():
            await session.commit()
        return await make_request(bot, method)
