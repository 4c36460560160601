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
from relove.bot.middlewares import CommitBeforeSend, DbSessionMiddleware, TouchMiddleware
from relove.bot.texts import Texts
from relove.config import Settings
from relove.db.engine import create_session_factory
from relove.db.health import DatabaseHealth
from relove.errors import ConfigError
from relove.users.touch import TouchWriter


def create_bot(settings: Settings, *, session: AiohttpSession | None = None) -> Bot:
    """A Bot for ``RELOVE_BOT_TOKEN``, talking to ``RELOVE_TELEGRAM_API_URL`` when set."""
    token = settings.token
    if not token:
        raise ConfigError(
            "RELOVE_BOT_TOKEN is not set: get a token from @BotFather, "
            "or run `relove demo` to try the bot in the local sandbox"
        )
    if session is None:
        # Every outgoing message passes the bot's shared rate limiter (replies go first).
        from relove.broadcasts.ratelimit import BotRateLimiter
        from relove.broadcasts.telegram import RateLimitedSession

        session = RateLimitedSession(BotRateLimiter.from_settings(settings))
        if settings.telegram_api_url:
            session.api = TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/"))
    session.middleware(CommitBeforeSend())
    session.middleware(TrackSends())  # after the commit: see relove.bot.attempts
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


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
        engine, health=DatabaseHealth.for_engine(engine), grace=settings.db_outage_grace
    )
    dp = Dispatcher(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        texts=texts,
        touch_writer=writer,
        db_health=writer.health,
        **deps,
    )
    dp.update.outer_middleware(TouchMiddleware(writer))
    dp.update.middleware(DbSessionMiddleware(session_factory))
    dp.include_routers(*build_routers())

    async def _flush_touches() -> None:
        await writer.close()

    dp.shutdown.register(_flush_touches)
    return dp
