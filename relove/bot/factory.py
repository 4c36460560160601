"""Bot and dispatcher factories: everything is built here and passed down, nothing global."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.bot.attempts import TrackSends
from relove.bot.handlers import build_routers
from relove.bot.inbox.store import TOUCHED
from relove.bot.middlewares import (
    CommitBeforeSend,
    DbSessionMiddleware,
    MessageLogMiddleware,
    RecordOutgoing,
    TouchMiddleware,
)
from relove.bot.middlewares.conversation import ConversationMiddleware
from relove.bot.texts import Texts
from relove.config import Settings
from relove.db.engine import create_session_factory
from relove.db.health import DatabaseHealth
from relove.events.conversation import MessageLog
from relove.events.retention import HistoryMaintenance
from relove.runtime import kill_self
from relove.telegram.client import require_token
from relove.telegram.ratelimit import RateLimiter, build_limiter
from relove.telegram.ratelimit.middleware import RateLimitMiddleware, limiter_of
from relove.users.touch import TouchWriter


def create_bot(
    settings: Settings, *, session: AiohttpSession | None = None,
    limiter: RateLimiter | None = None,
) -> Bot:
    """A Bot for ``RELOVE_BOT_TOKEN``, talking to ``RELOVE_TELEGRAM_API_URL`` when set.

    Every message it sends takes a reply slot from ``limiter`` (by default one built from the
    settings: shared through Redis when ``RELOVE_REDIS_URL`` is set); the broadcast runner of
    the same process paces its messages with the same limiter, behind the replies. A caller's
    own ``session`` (a test's fake transport) is paced only when ``limiter`` is given.
    """
    token = require_token(settings)
    paced = session is None or limiter is not None
    if session is None:
        session = AiohttpSession()
        if settings.telegram_api_url:
            session.api = TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/"))
    # Outer first: commit the update's transaction, then wait for a slot, then send.
    session.middleware(CommitBeforeSend())
    session.middleware(TrackSends())  # after the commit: see relove.bot.attempts
    if paced:
        session.middleware(RateLimitMiddleware(limiter or build_limiter(settings)))
    # Innermost: a message is recorded in the conversation once Telegram accepted it.
    session.middleware(RecordOutgoing())
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


async def close_bot(bot: Bot) -> None:
    """Close the bot's HTTP session and its limiter's connections."""
    try:
        await bot.session.close()
    finally:
        limiter = limiter_of(bot)
        if limiter is not None:
            await limiter.close()


def create_dispatcher(
    settings: Settings,
    engine: AsyncEngine,
    *,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
    texts: Texts | None = None,
    **deps: Any,
) -> Dispatcher:
    """The product's Dispatcher: touch middleware, one session per update, every router.

    ``deps`` land in the dispatcher's workflow data, so handlers can ask for them by name.
    """
    session_factory = session_factory or create_session_factory(engine)
    texts = texts or Texts.load(settings.language, settings.texts_dir)
    writer = TouchWriter(
        engine, health=DatabaseHealth.for_engine(engine), grace=settings.db_outage_grace,
        stamp=TOUCHED,  # used by webhook mode only (an inbox update's touch stamps it)
        after_commit=kill_self if settings.fault_kill_at == "touch" else None,
    )
    message_log = MessageLog(engine)
    dp = Dispatcher(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        texts=texts,
        touch_writer=writer,
        message_log=message_log,
        db_health=writer.health,
        **deps,
    )
    dp.update.outer_middleware(MessageLogMiddleware(message_log))
    dp.update.outer_middleware(TouchMiddleware(writer))
    dp.update.middleware(DbSessionMiddleware(session_factory))
    # Wired once for every router: the conversation components reach each message and
    # callback filter and handler (outer: filters such as a flow's command need them too).
    conversation = ConversationMiddleware()
    dp.message.outer_middleware(conversation)
    dp.callback_query.outer_middleware(conversation)
    dp.include_routers(*build_routers())

    async def _flush_touches() -> None:
        await writer.close()
        await message_log.close()

    dp.shutdown.register(_flush_touches)
    # History retention and PostgreSQL partitions ahead, every few hours while the bot runs.
    maintenance = HistoryMaintenance.from_settings(engine, settings)
    dp.startup.register(maintenance.start)
    dp.shutdown.register(maintenance.stop)
    return dp
