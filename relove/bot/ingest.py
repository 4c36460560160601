"""The update pipeline: from a page of updates to the handlers, through database outages.

    page ─▶ touch (one batch for the page) ─▶ one lane per user ─▶ dispatcher (handlers)

* **Touch per page.** :meth:`Ingest.put_page` touches every user of a page with ONE
  :meth:`~relove.users.touch.TouchWriter.touch_many` call (no await per update) and hands each
  update to the dispatcher with its fresh ``user``, through the dispatcher's outer middlewares
  but the touch middleware (chained once, not per update as ``feed_update`` does).
* **Per-user order.** A user's updates run one after another, in the order they came; different
  users run concurrently. Updates without a user run in their chat's lane, or on their own.
* **Bounded.** At most ``max_pending`` updates are held (being touched, queued or handled);
  ``put_page`` waits for room, so polling pauses instead of taking updates it cannot hold.
* **Database outages** (:mod:`relove.db.health`). A touch that fails because the database is
  unreachable is retried by the writer, in order; a handler that fails that way is run again
  when the database answers — only if the failed run had not yet sent anything to Telegram nor
  committed a write (:mod:`relove.bot.attempts`), so a reply is never duplicated. Both give up
  ``grace`` seconds after the update arrived: the update is dropped with one log line, counted,
  and the user (in a private chat, if the bot had not answered) gets a short apology once the
  database is back. Expected outage errors are logged without tracebacks.

Polling (:mod:`relove.bot.polling`) feeds it pages from ``getUpdates``; a webhook inbox can feed
it the same way and learn when each update is finished through ``on_settled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiogram import Bot, Dispatcher
from aiogram import loggers as aiogram_loggers
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import TelegramMethod
from aiogram.types import Chat, Update
from aiogram.types import User as TgUser

from relove.bot.attempts import begin_attempt, end_attempt, track_commits
from relove.bot.middlewares.touch import TouchMiddleware, touch_from_update
from relove.bot.texts import Texts
from relove.db.health import DatabaseHealth, Failure, classify, describe
from relove.db.models import UserSnapshot
from relove.errors import DatabaseUnavailable
from relove.ops import metrics
from relove.ops.logs import pop_context, push_context
from relove.users.touch import TouchWriter

log = logging.getLogger(__name__)

APOLOGY_TEXT = "ingest_outage_apology"

#: ``relove_updates_processed`` by outcome (a label lookup per update costs more than the count)
_PROCESSED = {outcome: metrics.UPDATES_PROCESSED.labels(outcome)
              for outcome in ("handled", "failed", "dropped")}  # fmt: skip
_OUTCOMES = tuple(_PROCESSED)


@dataclass
class IngestStats:
    """Counters since start (for logs, a readiness probe, metrics)."""

    received: int = 0
    handled: int = 0  #: handlers ran to the end
    failed: int = 0  #: a bug, bad data, or an outage after the handler had acted
    dropped: int = 0  #: given up after the grace
    retried: int = 0  #: handler runs repeated after an outage
    apologies: int = 0  #: "sorry, we were away" messages sent


def _user_and_chat(update: Update) -> tuple[TgUser | None, Chat | None]:
    """The update's user and chat as aiogram resolves them (messages, the common case,
    without building aiogram's event context)."""
    message = update.message
    if message is not None:
        return message.from_user, message.chat
    context = UserContextMiddleware.resolve_event_context(update)
    return context.user, context.chat


def _mounted_bot(update: Update) -> Bot | None:
    """``update.bot``, read from the model's private values (the property goes through
    pydantic's ``__getattr__`` after a failed lookup: ~4 µs, as much as the rest of the
    pipeline's own work per update)."""
    private = update.__pydantic_private__
    if private is not None and "_bot" in private:
        return cast(Bot | None, private["_bot"])
    return update.bot


class _Item:
    __slots__ = ("update", "key", "touched", "user", "error", "ready", "deadline", "held",
                 "chat_id", "settled")  # fmt: skip

    def __init__(self, update: Update, key: int | None, touched: bool, deadline: float,
                 chat_id: int | None) -> None:  # fmt: skip
        self.update = update
        self.key = key
        self.touched = touched  # the update has a user, touched before it is handled
        self.user: UserSnapshot | None = None
        self.error: BaseException | None = None
        self.ready = not touched
        self.deadline = deadline
        self.held = False
        self.chat_id = chat_id  # the private chat to apologise in
        self.settled = False


class _Lane:
    __slots__ = ("key", "items", "running")

    def __init__(self, key: int) -> None:
        self.key = key
        self.items: deque[_Item] = deque()
        self.running = False


class Ingest:
    """Takes pages of updates and runs them through the dispatcher (see the module doc)."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        writer: TouchWriter,
        *,
        max_pending: int = 5000,
        texts: Texts | None = None,
        on_settled: Callable[[Update, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.writer = writer
        self.health: DatabaseHealth = writer.health
        self.grace = writer.grace
        self.max_pending = max_pending
        self.texts = texts
        self.on_settled = on_settled
        self.stats = IngestStats()
        self._clock = clock
        self._lanes: dict[int, _Lane] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._arrived: deque[_Item] = deque()  # in arrival order, until settled at the front
        self._pending = 0
        self._last_accepted: int | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._apologies: dict[int, None] = {}
        self._chain: Callable[[Update, dict[str, Any]], Awaitable[Any]] | None = None
        self._chain_of: list[Any] = []  # the outer middlewares self._chain was built from
        # Finished updates not yet in the metrics: counted here, reported once per turn of the
        # event loop (a locked metric update per update cost more than the count).
        self._unreported = [0] * len(_OUTCOMES)
        self._unreported_settled = 0
        self._report_due = False
        self.health.counted_by_pipeline = True
        self.health.on_back(self._send_apologies_soon)
        self.health.on_down(lambda: self.health.count_waited(self.pending))
        engine = dp.get("engine")
        if engine is not None:
            track_commits(engine)

    # -- input ----------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Updates accepted and not finished yet."""
        return self._pending

    async def wait_for_room(self) -> None:
        """Wait while ``max_pending`` updates are held (polling pauses here)."""
        while self._pending >= self.max_pending:
            self._room.clear()
            await self._room.wait()

    async def put_page(self, updates: Sequence[Update], *, replayed: Collection[int] = (),
                       stamped: bool = False) -> None:  # fmt: skip
        """Accept a page of updates (in ``update_id`` order): touch their users in one batch,
        then hand each to its user's lane. Waits first while the pipeline is full.

        ``stamped`` (webhook inbox): each touch also stamps its update as touched, in the
        touch's own commit (the writer's :class:`~relove.users.touch.Stamp`). ``replayed``: ids
        of updates stamped so by a process that died before finishing them: touched again
        without their events, so the conversation and history get them exactly once."""
        await self.wait_for_room()
        if not updates:
            return
        deadline = self._clock() + self.grace
        if not self.health.available:
            self.health.count_waited(len(updates))
        records_events = self.writer.records_events
        touches, touched = [], []
        for update in updates:
            from_user, chat = _user_and_chat(update)
            touch = touch_from_update(update, from_user,
                                      events=records_events and update.update_id not in replayed)
            if stamped and touch is not None:
                touch.stamps = (update.update_id,)
            private_chat = chat.id if chat is not None and chat.type == "private" else None
            if touch is not None:
                key: int | None = touch.user_id
            else:
                key = None if chat is None else chat.id
            item = _Item(update, key, touch is not None, deadline, private_chat)
            self._arrived.append(item)
            if touch is not None:
                touches.append(touch)
                touched.append(item)
            if key is None:
                if item.ready:
                    self._spawn(self._run_alone(item))
                continue
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(key)
            lane.items.append(item)
            if item.ready:
                self._kick(lane)
        self._pending += len(updates)
        self._last_accepted = updates[-1].update_id
        self.stats.received += len(updates)
        metrics.UPDATES_RECEIVED.inc(len(updates))
        metrics.UPDATES_PENDING.inc(len(updates))
        self._idle.clear()
        if touches:
            self._spawn(self._touch_page(touched, touches, deadline))

    def settled_up_to(self) -> int | None:
        """The highest update id such that it and every update before it are finished (the
        offset polling may confirm at shutdown); ``None`` before the first update."""
        arrived = self._arrived
        while arrived and arrived[0].settled:
            arrived.popleft()
        return arrived[0].update.update_id - 1 if arrived else self._last_accepted

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted update is finished; False if ``timeout`` passed first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    async def close(self, timeout: float = 10.0) -> None:
        """Finish what is in flight (at most ``timeout`` seconds), then stop."""
        if not await self.drain(timeout):
            log.warning("stopping with %d updates unfinished", self.pending)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._report()
        await self.health.close()

    # -- touch ----------------------------------------------------------------------------------
    async def _touch_page(self, items: list[_Item], touches: list[Any], deadline: float) -> None:
        metrics.TOUCH_BATCH.observe(len(touches))
        started = time.perf_counter()
        try:
            results = await self.writer.touch_many(touches, deadline=deadline)
        except Exception as e:  # noqa: BLE001 - the writer reports per touch; be safe anyway
            results = [e] * len(items)
        metrics.TOUCH_SECONDS.observe(time.perf_counter() - started)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                item.error = result
            else:
                item.user = result
            item.ready = True
            if item.key is None:
                self._spawn(self._run_alone(item))
            else:
                self._kick(self._lanes[item.key])

    # -- lanes ----------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _kick(self, lane: _Lane) -> None:
        if not lane.running and lane.items and lane.items[0].ready:
            lane.running = True
            self._spawn(self._run_lane(lane))

    async def _run_lane(self, lane: _Lane) -> None:
        items = lane.items
        try:
            while items and items[0].ready:
                item = items[0]
                update_id = item.update.update_id
                token = push_context({"update_id": update_id, "user_id": item.key}
                                     if item.touched else {"update_id": update_id})  # fmt: skip
                try:
                    await self._process_update(item)
                finally:
                    pop_context(token)
                    items.popleft()
                    self._settle(item)
        finally:
            lane.running = False
            if not items and self._lanes.get(lane.key) is lane:
                del self._lanes[lane.key]

    async def _run_alone(self, item: _Item) -> None:
        token = push_context({"update_id": item.update.update_id})
        try:
            await self._process_update(item)
        finally:
            pop_context(token)
            self._settle(item)

    def _settle(self, item: _Item) -> None:
        if item.held:
            item.held = False
            self.health.release()
        item.settled = True
        self._pending -= 1
        self._unreported_settled += 1
        if not self._report_due:
            self._report_due = True
            asyncio.get_running_loop().call_soon(self._report)
        if self._pending < self.max_pending:
            self._room.set()
        if not self._pending:
            self._idle.set()
        arrived = self._arrived
        while arrived and arrived[0].settled:  # keep only what settled_up_to needs
            arrived.popleft()

    # -- one update (in its log context: update_id, user_id) ------------------------------------
    async def _process_update(self, item: _Item) -> None:
        update = item.update
        if item.error is not None:
            if isinstance(item.error, DatabaseUnavailable):
                self._drop(item, item.error)
            else:
                self.stats.failed += 1
                log.error("update %s not handled: touch failed: %s", update.update_id,
                          describe(item.error))  # fmt: skip
            self._finish(update, "failed")
            return
        kwargs: dict[str, Any] = {"user": item.user} if item.touched else {}
        retried = False
        while True:
            attempt, token = begin_attempt()
            try:
                response = await self._feed(update, kwargs)
            except Exception as e:  # noqa: BLE001 - sorted below
                error: BaseException = e
            else:
                if isinstance(response, TelegramMethod):
                    await self._answer(response)
                if retried:
                    self.health.report_success()
                self.stats.handled += 1
                self._finish(update, "handled")
                return
            finally:
                end_attempt(token)
            kind = classify(error)
            if kind is None:
                self.stats.failed += 1
                log.error("update %s failed", update.update_id, exc_info=error)
                self._finish(update, "failed")
                return
            if not attempt.repeatable:
                self.stats.failed += 1
                log.warning(
                    "update %s: the database failed after the handler had %s; not run again: %s",
                    update.update_id, "replied" if attempt.sent else "written data",
                    describe(error),
                )  # fmt: skip
                if not attempt.sent:
                    self._queue_apology(item)
                self._finish(update, "failed")
                return
            if kind is Failure.outage:
                self.health.report_failure(error)
            if not item.held:
                item.held = True
                self.health.hold()
            now = self._clock()
            if now >= item.deadline:
                self._drop(item, error)
                self._finish(update, "dropped")
                return
            if kind is Failure.outage:
                await self.health.wait_available(timeout=item.deadline - now)
            else:
                await asyncio.sleep(min(item.deadline - now, 0.05 + random.random() * 0.2))
            retried = True
            self.stats.retried += 1

    async def _feed(self, update: Update, kwargs: dict[str, Any]) -> Any:
        """``dp.feed_update(bot, update, **kwargs)``, with the dispatcher's outer middleware
        chain built once (aiogram wraps every middleware again for each update) and without
        the touch middleware: the pipeline touched the page already."""
        dp, bot = self.dp, self.bot
        outer = dp.update.outer_middleware
        if self._chain is None or outer[:] != self._chain_of:
            self._chain_of = list(outer[:])
            self._chain = outer.wrap_middlewares(
                [m for m in self._chain_of if not isinstance(m, TouchMiddleware)],
                dp.update.trigger,
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        handled = False
        mounted = _mounted_bot(update)
        if mounted is not bot and mounted != bot:  # as aiogram does: mount it on this bot
            update = Update.model_validate(update.model_dump(), context={"bot": bot})
        try:
            response = await self._chain(
                update, {"dispatcher": dp, **dp.workflow_data, **kwargs, "bot": bot}
            )
            handled = response is not UNHANDLED
            return response
        finally:
            aiogram_loggers.event.info(
                "Update id=%s is %s. Duration %d ms by bot id=%d", update.update_id,
                "handled" if handled else "not handled", (loop.time() - started) * 1000, bot.id,
            )  # fmt: skip

    async def _answer(self, method: TelegramMethod[Any]) -> None:
        """A handler returned a method instead of calling it (webhook style): call it."""
        try:
            await self.bot(method)
        except TelegramAPIError as e:
            log.error("Failed to make answer: %s: %s", type(e).__name__, e)

    def _finish(self, update: Update, outcome: str) -> None:
        self._unreported[_OUTCOMES.index(outcome)] += 1  # reported after its _settle
        if self.on_settled is not None:
            self.on_settled(update, outcome)

    def _report(self) -> None:
        """Put the updates finished since the last report into the metrics."""
        self._report_due = False
        counts, self._unreported = self._unreported, [0] * len(_OUTCOMES)
        for outcome, count in zip(_OUTCOMES, counts, strict=True):
            if count:
                _PROCESSED[outcome].inc(count)
        metrics.UPDATES_PENDING.dec(self._unreported_settled)
        self._unreported_settled = 0

    # -- giving up --------------------------------------------------------------------------------
    def _drop(self, item: _Item, error: BaseException) -> None:
        self.stats.dropped += 1
        self.health.dropped += 1
        user_id = item.user.id if item.user is not None else item.key
        log.warning(
            "update %s of user %s dropped: the database was unavailable for %g s "
            "(RELOVE_DB_OUTAGE_GRACE)%s",
            item.update.update_id, user_id, self.grace,
            "; the user gets an apology when it is back" if item.chat_id is not None else "",
        )  # fmt: skip
        self._queue_apology(item)

    def _queue_apology(self, item: _Item) -> None:
        if item.chat_id is None or self.texts is None:
            return
        self._apologies[item.chat_id] = None
        if self.health.available:
            self._send_apologies_soon()

    def _send_apologies_soon(self) -> None:
        if self._apologies:
            self._spawn(self._send_apologies())

    async def _send_apologies(self) -> None:
        assert self.texts is not None
        text = self.texts(APOLOGY_TEXT)
        while self._apologies and self.health.available:
            chat_id = next(iter(self._apologies))
            del self._apologies[chat_id]
            try:
                await self.bot.send_message(chat_id, text)
                self.stats.apologies += 1
            except TelegramAPIError as e:
                log.info("apology to chat %s not sent: %s", chat_id, e)
