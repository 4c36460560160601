"""The bot's update queue: long polling (getUpdates) and webhook delivery.

Semantics follow the Bot API: an update is kept until a getUpdates call with a greater
``offset`` confirms it (or a webhook POST is answered with 2xx); ``allowed_updates`` set by the
last getUpdates/setWebhook decides which new updates are recorded at all; a second concurrent
getUpdates ends the first one with 409, and getUpdates is refused with 409 while a webhook is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

ALL_UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
#: what Telegram sends when allowed_updates is empty or was never given
DEFAULT_UPDATE_TYPES = frozenset(ALL_UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
#: how long Telegram keeps an unconfirmed update
KEEP_SECONDS = 24 * 3600


class Conflict(Exception):
    """A 409 answer; the message is Telegram's description."""


class UpdateQueue:
    def __init__(self) -> None:
        self.pending: deque[dict[str, Any]] = deque()
        self.stamps: deque[float] = deque()
        self.next_id = 1
        self.allowed: frozenset[str] = DEFAULT_UPDATE_TYPES
        self.allowed_list: list[str] | None = None
        self._arrived: asyncio.Event = asyncio.Event()
        self._poll_generation = 0
        self.webhook: dict[str, Any] | None = None
        self.webhook_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self.closed = False

    # --- producing ---------------------------------------------------------------------------
    def push(self, kind: str, payload: dict[str, Any]) -> int | None:
        """Record an update of ``kind`` unless the bot's allowed_updates excludes it."""
        if kind not in self.allowed:
            return None
        update_id = self.next_id
        self.next_id += 1
        self.pending.append({"update_id": update_id, kind: payload})
        self.stamps.append(time.time())
        self._wake()
        return update_id

    def close(self) -> None:
        """The server is stopping: pending long polls return at once."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        event, self._arrived = self._arrived, asyncio.Event()
        event.set()

    def set_allowed(self, allowed: list[str] | None) -> None:
        if allowed is None:
            return
        self.allowed_list = list(allowed)
        self.allowed = frozenset(allowed) if allowed else DEFAULT_UPDATE_TYPES

    def _expire(self) -> None:
        edge = time.time() - KEEP_SECONDS
        while self.stamps and self.stamps[0] < edge:
            self.stamps.popleft()
            self.pending.popleft()

    def confirm(self, offset: int) -> None:
        """Forget updates before ``offset`` (a negative offset keeps the last -offset updates)."""
        if offset < 0:
            keep = -offset
            while len(self.pending) > keep:
                self.pending.popleft()
                self.stamps.popleft()
            return
        while self.pending and self.pending[0]["update_id"] < offset:
            self.pending.popleft()
            self.stamps.popleft()

    def drop_pending(self) -> None:
        self.pending.clear()
        self.stamps.clear()

    # --- long polling ------------------------------------------------------------------------
    async def get(self, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise Conflict(
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
        self._poll_generation += 1
        generation = self._poll_generation
        # End a concurrent long poll, like Telegram does for a second bot instance.
        self._wake()
        if offset is not None and offset != 0:
            self.confirm(offset)
        self._expire()
        deadline = time.monotonic() + timeout
        while not self.pending and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = self._arrived
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                break
            if generation != self._poll_generation:
                raise Conflict(
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running"
                )
            if self.webhook is not None:
                return []
        return [self.pending[i] for i in range(min(limit, len(self.pending)))]

    # --- webhook -----------------------------------------------------------------------------
    def set_webhook(
        self, info: dict[str, Any], deliver: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self.webhook = info
        self.webhook_error = None
        self._wake()  # a pending long poll returns empty
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(deliver())

    async def delete_webhook(self) -> None:
        self.webhook = None
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._wake()

    def webhook_info(self) -> dict[str, Any]:
        hook = self.webhook or {}
        info: dict[str, Any] = {
            "url": hook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if hook:
            info["max_connections"] = hook.get("max_connections", 40)
            info["ip_address"] = "127.0.0.1"
            if self.allowed_list is not None:
                info["allowed_updates"] = self.allowed_list
        if self.webhook_error:
            info["last_error_date"], info["last_error_message"] = self.webhook_error
        return info

    async def wait_pending(self) -> None:
        while not self.pending:
            await self._arrived.wait()

    async def deliver_webhook(
        self, session: aiohttp.ClientSession, on_reply: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> None:
        """POST pending updates to the webhook URL until it is deleted, like Telegram: up to
        ``max_connections`` at once, but one at a time per chat (a chat's next update waits
        until the previous one was answered with 2xx; a failed one is retried first)."""
        hook = self.webhook
        if hook is None:
            return
        connections = max(1, min(int(hook.get("max_connections") or 40), 100))
        busy: set[Any] = set()  # chats with a delivery in flight
        await asyncio.gather(*(self._webhook_worker(session, on_reply, busy)
                               for _ in range(connections)))  # fmt: skip

    def _next_for_webhook(self, busy: set[Any]) -> tuple[dict[str, Any], Any] | None:
        for update in self.pending:
            chat = _chat_of(update)
            if chat not in busy:
                return update, chat
        return None

    async def _webhook_worker(
        self, session: aiohttp.ClientSession,
        on_reply: Callable[[dict[str, Any]], Awaitable[Any]], busy: set[Any],
    ) -> None:  # fmt: skip
        backoff = 0.2
        while self.webhook is not None:
            arrived = self._arrived
            picked = self._next_for_webhook(busy)
            if picked is None:
                await arrived.wait()
                continue
            hook = self.webhook
            if hook is None:
                return
            update, chat = picked
            busy.add(chat)
            try:
                ok, body, error = await self._post_update(session, hook, update)
            finally:
                busy.discard(chat)
            if not ok:
                self.webhook_error = (int(time.time()), error)
                log.info("webhook delivery failed: %s", error)
                self._wake()  # the chat is free again for another connection
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.2
            for i, pending in enumerate(self.pending):
                if pending is update:
                    del self.pending[i]
                    del self.stamps[i]
                    break
            self._wake()
            await self._reply_in_response(body, on_reply)

    async def _post_update(
        self, session: aiohttp.ClientSession, hook: dict[str, Any], update: dict[str, Any]
    ) -> tuple[bool, bytes, str]:
        headers = {"Content-Type": "application/json"}
        if hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        try:
            async with session.post(
                hook["url"], data=json.dumps(update), headers=headers,
                timeout=aiohttp.ClientTimeout(total=60),
            ) as resp:
                body = await resp.read()
                ok = 200 <= resp.status < 300
                return ok, body, f"Wrong response from the webhook: {resp.status} {resp.reason}"
        except (aiohttp.ClientError, TimeoutError) as e:
            return False, b"", f"Connection failed: {type(e).__name__}"

    async def _reply_in_response(
        self, body: bytes, on_reply: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> None:
        """A webhook may answer with a method call in its response body; execute it."""
        if not body.strip():
            return
        try:
            call = json.loads(body)
        except ValueError:
            return
        if isinstance(call, dict) and isinstance(call.get("method"), str):
            try:
                await on_reply(call)
            except Exception:  # the bot never sees the result of such a call
                log.exception("method in webhook response failed")


def _chat_of(update: dict[str, Any]) -> Any:
    """The chat whose updates Telegram delivers one at a time (else the update on its own)."""
    for key, body in update.items():
        if key == "update_id" or not isinstance(body, dict):
            continue
        chat = body.get("chat") or (body.get("message") or {}).get("chat") or body.get("from")
        if isinstance(chat, dict) and "id" in chat:
            return chat["id"]
    return ("update", update.get("update_id"))
