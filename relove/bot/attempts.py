"""What one attempt at handling an update has done so far: is it still safe to run it again?

A handler that fails because the database went away is run again later — but only if running it
again cannot repeat something the user or the database already saw. :class:`Attempt` records,
for the update being handled (through a context variable, so handlers need not cooperate):

* ``sent``: the attempt called a Bot API method that changes something (``sendMessage``,
  ``editMessageText``, ``answerCallbackQuery`` …). Reads (``get…``) and the typing indicator
  (``sendChatAction``) don't count. Marked before the call goes out: a call that failed on the
  way may still have reached Telegram.
* ``committed``: a database transaction that wrote something (an INSERT, UPDATE, DELETE or a
  ``WITH`` statement) was committed, or was being committed when it failed. Transactions that
  only read don't count.

:func:`track_commits` installs the database half on an engine; :class:`TrackSends` is the
Bot API half, a request middleware on the bot's session.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine


class Attempt:
    """One run of an update's handlers."""

    __slots__ = ("sent", "committed")

    def __init__(self) -> None:
        self.sent = False
        self.committed = False

    @property
    def repeatable(self) -> bool:
        """Nothing visible happened yet: running the handlers again repeats nothing."""
        return not (self.sent or self.committed)


_current: ContextVar[Attempt | None] = ContextVar("relove_attempt", default=None)


def begin_attempt() -> tuple[Attempt, Token[Attempt | None]]:
    attempt = Attempt()
    return attempt, _current.set(attempt)


def end_attempt(token: Token[Attempt | None]) -> None:
    _current.reset(token)


#: Bot API methods that change nothing a user sees (besides every ``get…`` method).
_HARMLESS = frozenset({"sendChatAction"})


class TrackSends(BaseRequestMiddleware):
    """Marks the current attempt as ``sent`` before each Bot API call that changes something.

    Register it after ``CommitBeforeSend``: a commit that fails before the call leaves the
    attempt repeatable."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        attempt = _current.get()
        if attempt is not None and not attempt.sent:
            name = method.__api_method__
            if not name.startswith("get") and name not in _HARMLESS:
                attempt.sent = True
        return await make_request(bot, method)


_WRITES = ("INSERT", "UPDATE", "DELETE", "WITH", "MERGE", "REPLACE")
_WROTE = "relove_attempt_wrote"


def _after_execute(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    attempt = _current.get()
    if attempt is None or not statement.lstrip()[:7].upper().startswith(_WRITES):
        return
    if context.execution_options.get("isolation_level") == "AUTOCOMMIT":
        attempt.committed = True  # each statement commits by itself
    else:
        conn.info[_WROTE] = True


def _on_commit(conn: Any) -> None:
    if conn.info.pop(_WROTE, False):
        attempt = _current.get()
        if attempt is not None:
            attempt.committed = True


def _on_rollback(conn: Any) -> None:
    # This listener runs BEFORE the driver's rollback: it must never raise, or the rollback is
    # skipped and the connection keeps its transaction (on SQLite: the write lock, for every
    # other writer, forever). An invalidated connection refuses `.info`; its flag is dropped at
    # check-in instead (_on_checkin).
    if conn.invalidated:
        return
    try:
        conn.info.pop(_WROTE, None)
    except exc.SQLAlchemyError:
        pass


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info.pop(_WROTE, None)  # a flag never outlives its checkout


def track_commits(engine: AsyncEngine) -> None:
    """Let attempts on ``engine`` know when they commit a write (idempotent)."""
    sync = engine.sync_engine
    if not event.contains(sync, "commit", _on_commit):
        event.listen(sync, "after_cursor_execute", _after_execute)
        event.listen(sync, "commit", _on_commit)
        event.listen(sync, "rollback", _on_rollback)
        event.listen(sync.pool, "checkin", _on_checkin)
