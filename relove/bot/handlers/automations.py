"""Automations inside the bot process (``relove run``, unless RELOVE_AUTOMATIONS_IN_BOT=false):
the same worker loop as ``relove worker``; several processes may run it at once (claims skip
each other's rows, the intake locks its cursor)."""

from __future__ import annotations

import asyncio

from aiogram import Bot, Dispatcher, Router
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.automations.runner import AutomationRunner
from relove.bot.background import stopper
from relove.bot.texts import Texts
from relove.broadcasts.telegram import HttpSend
from relove.config import Settings
from relove.telegram.client import BotApiClient
from relove.telegram.ratelimit import build_limiter
from relove.telegram.ratelimit.middleware import limiter_of

_WORKER_KEY = "relove_automations_worker"


async def start_runner(**data: object) -> None:
    """Dispatcher start-up: a broken automations file stops it with one line per problem."""
    dispatcher, bot, settings = data.get("dispatcher"), data.get("bot"), data.get("settings")
    engine = data.get("engine")
    if not (isinstance(dispatcher, Dispatcher) and isinstance(bot, Bot)
            and isinstance(settings, Settings) and isinstance(engine, AsyncEngine)):
        return  # started without a bot or database (e.g. a unit test's dispatcher)
    if settings.automations_file is None or not settings.automations_in_bot:
        return
    client = BotApiClient(bot.token, settings.telegram_api_url)
    try:
        runner = AutomationRunner.from_settings(
            engine, HttpSend(client), limiter_of(bot) or build_limiter(settings), settings,
            labels=Texts.load(settings.language, settings.texts_dir))
    except Exception:
        await client.close()
        raise
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_forever(stop))
    dispatcher[_WORKER_KEY] = (stop, task, client)


stop_runner = stopper(_WORKER_KEY)


def create_router() -> Router:
    router = Router(name="automations")
    router.startup.register(start_runner)
    router.shutdown.register(stop_runner)
    return router
