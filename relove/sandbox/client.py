"""Python client of the sandbox's control API, shared by tests, the demo and benchmarks.

    async with SandboxClient("http://127.0.0.1:8081") as sandbox:
        user = await sandbox.create_user("Аня", username="anya")
        await sandbox.start(user["id"], "src_instagram")
        reply = await sandbox.wait_for_bot_message(user["id"])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from relove.errors import ReloveError

BULK_CHUNK = 5000


class SandboxError(ReloveError):
    """The sandbox refused a control call (the message is its reason), or did not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SandboxClient:
    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> SandboxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
            self._own_session = True
        return self._session

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/api/{path.lstrip('/')}"
        if json is None and method.upper() not in ("GET", "HEAD"):
            json = {}  # state-changing calls are always JSON (the API refuses anything else)
        try:
            async with self.session.request(method, url, json=json, params=params) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    reason = data.get("error") if isinstance(data, dict) else None
                    raise SandboxError(reason or f"HTTP {resp.status}", resp.status)
                return data
        except aiohttp.ClientError as e:
            raise SandboxError(f"sandbox at {self.base_url} is not reachable: {e}") from e

    # --- bot, limits, counters --------------------------------------------------------------
    async def bot(self) -> dict[str, Any]:
        return await self.call("GET", "bot")

    async def set_bot(self, **switches: bool) -> dict[str, Any]:
        """BotFather's switches: ``can_read_all_group_messages`` (privacy mode off),
        ``inline_mode``."""
        return await self.call("PATCH", "bot", json=switches)

    async def limits(self) -> dict[str, Any]:
        return await self.call("GET", "limits")

    async def set_limits(self, **values: Any) -> dict[str, Any]:
        """Change limits or faults, e.g. ``set_limits(rate=30, per_chat=1, fault_5xx=0.1)``."""
        return await self.call("PATCH", "limits", json=values)

    async def stats(self) -> dict[str, Any]:
        return await self.call("GET", "stats")

    async def reset_stats(self) -> dict[str, Any]:
        return await self.call("POST", "stats/reset")

    async def reset(self, *, keep_users: bool = False) -> dict[str, Any]:
        return await self.call("POST", "reset", json={"keep_users": keep_users})

    # --- users ------------------------------------------------------------------------------
    async def create_user(self, first_name: str, **fields: Any) -> dict[str, Any]:
        """A simulated user (``id``, ``last_name``, ``username``, ``language_code``,
        ``started`` — True for someone who has pressed Start before)."""
        return await self.call("POST", "users", json={"first_name": first_name, **fields})

    async def create_users(self, users: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Many users at once (sent in chunks)."""
        created: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for user in users:
            batch.append(user)
            if len(batch) >= BULK_CHUNK:
                created += (await self.call("POST", "users", json={"users": batch}))["users"]
                batch = []
        if batch:
            created += (await self.call("POST", "users", json={"users": batch}))["users"]
        return created

    async def users(self) -> list[dict[str, Any]]:
        return (await self.call("GET", "users"))["users"]

    async def user(self, user_id: int) -> dict[str, Any]:
        return await self.call("GET", f"users/{user_id}")

    async def send(self, user_id: int, text: str, *, chat_id: int | None = None,
                   reply_to: int | None = None) -> dict[str, Any]:
        """The user writes ``text`` (in a group: ``chat_id``; as a reply: ``reply_to``);
        returns the user's message."""
        body: dict[str, Any] = {"text": text}
        if chat_id is not None:
            body["chat_id"] = chat_id
        if reply_to is not None:
            body["reply_to"] = reply_to
        return (await self.call("POST", f"users/{user_id}/messages", json=body))["message"]

    async def start(self, user_id: int, payload: str | None = None) -> dict[str, Any]:
        """The user presses Start (``/start payload`` for a deep link)."""
        return await self.send(user_id, f"/start {payload}" if payload else "/start")

    async def press(self, user_id: int, message_id: int, *, data: str | None = None,
                    text: str | None = None, wait: float = 0) -> dict[str, Any]:
        """The user presses an inline button (by callback data or label); with ``wait``, wait up
        to that many seconds for the bot's answerCallbackQuery."""
        body = {"message_id": message_id, "data": data, "text": text, "wait": wait}
        return await self.call("POST", f"users/{user_id}/buttons", json=body)

    async def press_keyboard(self, user_id: int, text: str) -> dict[str, Any]:
        """The user presses a reply-keyboard button."""
        return (await self.call("POST", f"users/{user_id}/keyboard", json={"text": text}))[
            "message"]

    async def block(self, user_id: int) -> dict[str, Any]:
        return await self.call("POST", f"users/{user_id}/block")

    async def unblock(self, user_id: int) -> dict[str, Any]:
        return await self.call("POST", f"users/{user_id}/unblock")

    async def deactivate(self, user_id: int) -> dict[str, Any]:
        return await self.call("POST", f"users/{user_id}/deactivate")

    async def create_group(self, title: str, members: list[int], *,
                           bot_admin: bool = False) -> dict[str, Any]:
        """A group of simulated users with the bot in it (its first member is the creator;
        ``bot_admin``: the bot is an administrator and sees every message)."""
        return await self.call("POST", "groups", json={"title": title, "members": members,
                                                       "bot_admin": bot_admin})

    async def inline_query(self, user_id: int, query: str, *, offset: str = "",
                           wait: float = 0) -> dict[str, Any]:
        """The user types ``@bot query``; with ``wait``, wait up to that many seconds for the
        bot's answerInlineQuery (``answer`` then holds its ``results``)."""
        return await self.call("POST", f"users/{user_id}/inline",
                               json={"query": query, "offset": offset, "wait": wait})

    async def choose_inline_result(self, user_id: int, inline_query_id: str,
                                   result_id: str) -> dict[str, Any]:
        """The user sends one of the answered results to their chat with the bot."""
        body = {"inline_query_id": inline_query_id, "result_id": result_id}
        return (await self.call("POST", f"users/{user_id}/inline/choose", json=body))["message"]

    # --- reading the conversation ------------------------------------------------------------
    async def chat(self, user_id: int, *, after: int = 0, since: int | None = None,
                   wait: float = 0) -> dict[str, Any]:
        """The chat view: ``chat`` (version, reply keyboard…), ``messages``,
        ``callback_answers``; with ``since``, long-poll until the version passes it."""
        params: dict[str, Any] = {"after": after}
        if since is not None:
            params.update(since=since, wait=wait)
        return await self.call("GET", f"users/{user_id}/messages", params=params)

    async def messages(self, user_id: int, *, after: int = 0,
                       from_bot: bool = False) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"after": after, "from_bot": "1" if from_bot else "0"}
        return (await self.call("GET", f"users/{user_id}/messages", params=params))["messages"]

    async def wait_for(self, user_id: int, check: Callable[[dict[str, Any]], Any], *,
                       timeout: float = 10.0) -> Any:
        """Long-poll the chat until ``check(view)`` returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        view = await self.chat(user_id)
        while True:
            found = check(view)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no expected change in the chat of user {user_id} "
                                   f"within {timeout:g}s; last messages: {view['messages'][-3:]}")
            view = await self.chat(user_id, since=view["chat"]["version"],
                                   wait=min(remaining, 25.0))

    async def wait_for_bot_message(
        self, user_id: int, *, after: int = 0, timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first message from the bot with ``message_id > after`` (matching ``where``)."""

        def check(view: dict[str, Any]) -> dict[str, Any] | None:
            for m in view["messages"]:
                if m["from_bot"] and m["message_id"] > after and (where is None or where(m)):
                    return m
            return None

        return await self.wait_for(user_id, check, timeout=timeout)

    async def ask(self, user_id: int, text: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """The user writes ``text``; return the bot's first reply to it."""
        sent = await self.send(user_id, text)
        return await self.wait_for_bot_message(user_id, after=sent["message_id"],
                                               timeout=timeout)

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Wait for the sandbox to answer (it may still be starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.bot()
                return
            except SandboxError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
