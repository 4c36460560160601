"""The webhook server of `relove run --webhook`: Telegram (through the proxy) posts here.

An update is answered 200 only once it is in the inbox (committed); while the database is
unreachable the answer is 503, so Telegram delivers it again later — nothing is acknowledged
that was not recorded. A wrong or missing secret (compared in constant time) is 401, a body
over ``RELOVE_WEBHOOK_MAX_BODY`` 413, anything that is not an update 400. On SIGTERM the
server answers 503 to new posts (Telegram retries them, the proxy sends them to another
instance), the updates in flight are finished (at most ``RELOVE_WEBHOOK_DRAIN_SECONDS``),
their processing recorded and the lanes released.

``WebhookServer.app`` is a plain aiohttp application: other endpoints (health, metrics) can
be added to it before :meth:`WebhookServer.run`; :meth:`WebhookServer.counters` gives the
counters as numbers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiohttp import web

from relove.bot.inbox.processor import InboxProcessor
from relove.bot.inbox.store import Inbox, lane_of
from relove.bot.ingest import Ingest
from relove.bot.lifecycle import dispatcher_running
from relove.config import Settings
from relove.db.health import classify, describe
from relove.errors import ConfigError
from relove.ops import metrics
from relove.runtime import tune_gc

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class WebhookStats:
    received: int = 0  #: new updates recorded
    duplicates: int = 0  #: redeliveries of updates already recorded
    unauthorized: int = 0  #: 401: wrong or missing secret
    rejected: int = 0  #: 400 / 413: not an update, or too large
    unavailable: int = 0  #: 503: the database was unreachable, or the server stopping


def webhook_path(settings: Settings) -> str:
    return urlsplit(settings.webhook_url or "").path or "/"


def listen_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.webhook_listen.rpartition(":")
    return host.strip("[]"), int(port)


def instance_name() -> str:
    """Who holds a lease: host, process and a random part (a restart is a new owner)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookServer:
    def __init__(self, bot: Bot, dp: Dispatcher, settings: Settings, *,
                 owner: str | None = None, poll_interval: float = 0.5) -> None:  # fmt: skip
        self.check_settings(settings)
        assert settings.webhook_secret is not None
        self.bot = bot
        self.dp = dp
        self.settings = settings
        self._secret = settings.webhook_secret.get_secret_value().encode()
        self.inbox = Inbox(dp["engine"], owner or instance_name(), lease=settings.webhook_lease)
        self.ingest = Ingest(dp, bot, dp["touch_writer"], max_pending=settings.ingest_max_pending,
                             texts=dp["texts"])  # fmt: skip
        self.health = self.ingest.health
        self.processor = InboxProcessor(
            self.inbox, self.ingest, bot, poll_interval=poll_interval,
            keep=timedelta(hours=settings.webhook_keep_hours),
        )  # fmt: skip
        self.stats = WebhookStats()
        self.stopping = False
        self.port: int | None = None
        self._stop = asyncio.Event()
        self.app = web.Application(client_max_size=settings.webhook_max_body)
        self.app.router.add_post(webhook_path(settings), self.handle)

    @staticmethod
    def check_settings(settings: Settings) -> None:
        """Refuse with one line when webhook mode is not configured."""
        if not settings.webhook_url:
            raise ConfigError("RELOVE_WEBHOOK_URL: set the public address Telegram posts to")
        if settings.webhook_secret is None:
            raise ConfigError("RELOVE_WEBHOOK_SECRET: set a secret for the webhook "
                              "(1-256 of A-Z a-z 0-9 _ -)")  # fmt: skip

    # -- the endpoint ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        if self.stopping:
            self._count("unavailable")
            return _plain(503, "stopping", retry_after=True)
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            self._count("unauthorized")
            return _plain(401, "wrong secret token")
        if (request.content_length or 0) > self.settings.webhook_max_body:
            self._count("rejected")
            return _plain(413, "update too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._count("rejected")
            return _plain(413, "update too large")
        try:
            payload = body.decode()
            update = json.loads(payload)
            update_id = update["update_id"]
            if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            self._count("rejected")
            return _plain(400, "not a Telegram update")
        try:
            fresh = await self.inbox.record(update_id, lane_of(update), payload)
        except Exception as e:  # noqa: BLE001 - sorted below
            if classify(e) is None:
                log.error("update %s not recorded", update_id, exc_info=e)
                return _plain(500, "not recorded")
            self._count("unavailable")
            self.health.report_failure(e)  # one warning per outage
            log.debug("update %s not recorded: %s", update_id, describe(e))
            return _plain(503, "database unavailable", retry_after=True)
        self.health.report_success()
        if fresh:
            self._count("received")
            self.processor.wake()
        else:
            self._count("duplicates")
        return web.Response(status=200)

    def _count(self, outcome: str) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        metrics.INBOX_POSTS.labels(_OUTCOMES[outcome]).inc()

    def counters(self) -> dict[str, float]:
        """Updates received / duplicated / refused, and the processor's counters."""
        s = self.stats
        return {"received": s.received, "duplicates": s.duplicates,
                "unauthorized": s.unauthorized, "rejected": s.rejected,
                "unavailable": s.unavailable,
                **{f"inbox_{k}": v for k, v in self.processor.counters().items()}}  # fmt: skip

    # -- running --------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Serve until :meth:`stop` (or SIGTERM / SIGINT), then shut down gracefully."""
        async with dispatcher_running(self.dp, self.bot,
                                      self._on_signal if handle_signals else None):  # fmt: skip
            runner = web.AppRunner(self.app, handle_signals=False, access_log=None,
                                   shutdown_timeout=5)
            await runner.setup()
            try:
                host, port = listen_address(self.settings)
                site = web.TCPSite(runner, host, port, backlog=1024)
                await site.start()
                sockets = getattr(site._server, "sockets", None) or ()
                self.port = sockets[0].getsockname()[1] if sockets else port
                log.info("Webhook server on %s:%s%s (instance %s)", host, self.port,
                         webhook_path(self.settings), self.inbox.owner)  # fmt: skip
                self.processor.start()
                await self._stop.wait()
                # Stop taking work: new posts get 503 (Telegram retries; the proxy picks another).
                self.stopping = True
                await self.processor.stop(self.settings.webhook_drain_seconds)
            finally:
                await runner.cleanup()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.warning("Received %s: answering 503, finishing the updates in flight", sig.name)
        self.stop()


#: WebhookStats field → the outcome label of relove_inbox_posts_total
_OUTCOMES = {"received": "recorded", "duplicates": "duplicate", "unauthorized": "unauthorized",
             "rejected": "rejected", "unavailable": "unavailable"}  # fmt: skip


def _plain(status: int, text: str, *, retry_after: bool = False) -> web.Response:
    headers = {"Retry-After": "1"} if retry_after else None
    return web.Response(status=status, text=text, headers=headers)


async def serve_webhook(bot: Bot, dp: Dispatcher, settings: Settings) -> None:
    """Serve updates from the webhook until a signal stops it."""
    tune_gc()
    await WebhookServer(bot, dp, settings).run(handle_signals=True)
