"""`relove run`: the bot, by long polling or (``--webhook``) as a webhook server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.cli.common import console, open_db, probes, run, settings
from relove.config import Settings
from relove.db.engine import display_url

log = logging.getLogger(__name__)


def run_bot(
    webhook: bool = typer.Option(
        False, "--webhook",
        help="Serve Telegram's webhook posts on RELOVE_WEBHOOK_LISTEN (durable inbox; several "
             "instances may run behind a proxy) instead of long polling.",
    ),
) -> None:  # fmt: skip
    """Run the bot: long polling, or with --webhook a webhook server over the durable inbox
    (the SQLite default upgrades its schema by itself)."""
    # aiogram loads slowly: only the commands that run the bot import it.
    from relove.bot.factory import close_bot, create_bot, create_dispatcher
    from relove.bot.polling import poll
    from relove.conversation.components import build_components

    s = settings()
    bot = create_bot(s)  # refuses with one line when no token is set
    if webhook:
        from relove.bot.inbox.server import WebhookServer

        WebhookServer.check_settings(s)  # one line before anything starts

    async def _run() -> None:
        async with open_db(s) as (engine, sessions), _probes(s, engine, webhook):
            try:
                me = await bot.get_me()
                console.print(
                    f"Running @{me.username} on {display_url(s.database_url)}"
                    + (f" via {s.telegram_api_url}" if s.telegram_api_url else "")
                    + (f", webhook on {s.webhook_listen}" if webhook else "")
                )
                # A broken scenario / catalog / persona file stops start-up with one line.
                conversation = build_components(s, sessions, strict=True)
                dp = create_dispatcher(
                    s, engine, session_factory=sessions, conversation=conversation
                )
                async with _webhooks(s, engine):
                    if webhook:
                        from relove.bot.inbox.server import serve_webhook

                        await serve_webhook(bot, dp, s)
                    else:
                        await poll(bot, dp)
            finally:
                await close_bot(bot)

    run(_run())


def _probes(s: Settings, engine: AsyncEngine, webhook: bool
            ) -> AbstractAsyncContextManager[object]:  # fmt: skip
    """The probes; in webhook mode with the inbox's lag (readiness and gauges)."""
    if not webhook:
        return probes(s, engine)
    from relove.bot.inbox.processor import inbox_probes
    from relove.bot.inbox.store import Inbox

    checks, collectors = inbox_probes(Inbox(engine, "probe"), s.webhook_ready_max_lag)
    return probes(s, engine, checks=checks, collectors=collectors)


@asynccontextmanager
async def _webhooks(s: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    """Webhook deliveries beside the bot (unless RELOVE_WEBHOOKS_ENABLED=false); a
    `relove worker` running too shares the work safely (docs/webhooks.md)."""
    if not s.webhooks_enabled:
        yield
        return
    from relove.bot.texts import Texts
    from relove.telegram.client import BotApiClient
    from relove.webhooks.worker import WebhookWorker, tell_owners

    client = BotApiClient.from_settings(s)
    stop = asyncio.Event()
    worker = WebhookWorker(engine, s, on_disabled=tell_owners(
        client.call, Texts.load(s.language, s.texts_dir), s.admin_ids))
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await client.close()
