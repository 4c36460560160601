"""Long polling for `relove run` and `relove demo`: ``getUpdates`` pages into the pipeline.

aiogram's own polling loop hands every update to a task at once and confirms it to Telegram
with the next ``getUpdates``, whatever became of it. This loop feeds whole pages to
:class:`relove.bot.ingest.Ingest` instead, which touches a page in one batch, keeps each
user's updates in order and holds them through a database outage; when the pipeline is full,
polling pauses (nothing more is taken, so nothing is confirmed that cannot be held). On stop
it finishes what is in flight, then confirms exactly the updates that are finished, so a
restart neither repeats nor loses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.utils.backoff import Backoff, BackoffConfig

from relove.bot.ingest import Ingest
from relove.bot.lifecycle import dispatcher_running
from relove.config import Settings
from relove.runtime import tune_gc

log = logging.getLogger(__name__)

#: Every update type that carries a user, so the touch middleware sees them all (Telegram only
#: sends what ``allowed_updates`` asks for; aiogram would otherwise ask only for the types that
#: have a handler, and e.g. a block — ``my_chat_member`` — would never reach the touch).
TOUCH_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "callback_query",
        "inline_query",
        "chosen_inline_result",
        "my_chat_member",
        "chat_join_request",
        "pre_checkout_query",
        "shipping_query",
        "poll_answer",
        "message_reaction",
    }
)

BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)


def allowed_updates(dp: Dispatcher) -> list[str]:
    return sorted(set(dp.resolve_used_update_types()) | TOUCH_UPDATE_TYPES)


def create_ingest(bot: Bot, dp: Dispatcher) -> Ingest:
    """The pipeline for the product's dispatcher (``create_dispatcher``)."""
    settings = dp["settings"]
    assert isinstance(settings, Settings)
    return Ingest(
        dp, bot, dp["touch_writer"], max_pending=settings.ingest_max_pending, texts=dp["texts"]
    )


class Poller:
    """Runs the dispatcher's start-up, polls until :meth:`stop`, then shuts down cleanly."""

    def __init__(
        self,
        bot: Bot,
        dp: Dispatcher,
        ingest: Ingest | None = None,
        *,
        polling_timeout: int = 10,
        drain_timeout: float = 10.0,
    ) -> None:
        self.bot = bot
        self.dp = dp
        self.ingest = ingest or create_ingest(bot, dp)
        self.polling_timeout = polling_timeout
        self.drain_timeout = drain_timeout
        self.offset: int | None = None  #: the next getUpdates asks from here
        self.confirmed: int | None = None  #: Telegram forgot every update before this one
        self.polls = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        async with dispatcher_running(self.dp, self.bot,
                                      self._on_signal if handle_signals else None):  # fmt: skip
            try:
                await self._poll()
            finally:
                await self.ingest.close(self.drain_timeout)
                await self._confirm_finished()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.warning("Received %s: finishing the updates in flight", sig.name)
        self.stop()

    async def _poll(self) -> None:
        me = await self.bot.me()
        log.info("Polling for updates of @%s (id %s)", me.username, me.id)
        request = GetUpdates(timeout=self.polling_timeout, allowed_updates=allowed_updates(self.dp))
        timeout = int(self.bot.session.timeout + self.polling_timeout)
        backoff = Backoff(BACKOFF)
        failed = False
        while not self._stop.is_set():
            await self._until_stopped(self.ingest.wait_for_room())
            if self._stop.is_set():
                break
            request.offset = self.offset
            try:
                updates = await self._until_stopped(self.bot(request, request_timeout=timeout))
            except Exception as e:  # noqa: BLE001 - Telegram unreachable: wait and try again
                failed = True
                log.error("Failed to fetch updates - %s: %s; retrying in %.1f s",
                          type(e).__name__, e, backoff.next_delay)  # fmt: skip
                await self._until_stopped(backoff.asleep())
                continue
            if updates is None:
                break
            if failed:
                log.info("Fetching updates again")
                backoff.reset()
                failed = False
            self.polls += 1
            self.confirmed = request.offset
            if updates:
                self.offset = updates[-1].update_id + 1
                await self.ingest.put_page(updates)

    async def _until_stopped(self, awaitable: Any) -> Any:
        """Await ``awaitable`` unless :meth:`stop` comes first (then ``None``)."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return None

    async def _confirm_finished(self) -> None:
        """Tell Telegram which updates are finished (the next start begins after them)."""
        done = self.ingest.settled_up_to()
        if done is None or (self.confirmed is not None and done + 1 <= self.confirmed):
            return
        try:
            await self.bot(GetUpdates(offset=done + 1, limit=1, timeout=0))
        except Exception as e:  # noqa: BLE001 - the next start gets them again
            log.warning("could not confirm finished updates: %s", e)


async def poll(bot: Bot, dp: Dispatcher) -> None:
    """Serve updates until a signal stops it."""
    tune_gc()
    await Poller(bot, dp).run(handle_signals=True)


__all__ = ["TOUCH_UPDATE_TYPES", "Poller", "allowed_updates", "create_ingest", "poll"]
