"""The sandbox: one simulated bot with its users, update queue, flood limits and counters.

The Bot API routes (:mod:`relove.sandbox.botapi`) act as the bot; the control API
(:mod:`relove.sandbox.control`) and the web chat act as the users through the ``user_*`` methods
here, which produce the updates the bot receives.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from relove.sandbox.limits import LimitConfig, Limiter, Stats
from relove.sandbox.state import PRIVATE, Chat, Message, SimUser, World
from relove.sandbox.updates import UpdateQueue
from relove.telegram.limits import TEXT_LIMIT

DEFAULT_TOKEN = "123456789:sandbox-token-for-local-development"
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?")


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code", "description", "parameters"}``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


class ActionError(ValueError):
    """A simulated user cannot do what the control API asked (answered with 409/404/400)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    #: if set, only this token is accepted; otherwise any well-formed token is
    token: str | None = None
    bot_name: str = "reLove Sandbox"
    bot_username: str = "relove_sandbox_bot"
    limits: LimitConfig = field(default_factory=LimitConfig)
    #: the share of calls a fault is injected into is random unless a seed is given
    seed: int | None = None


@dataclass(slots=True)
class CallbackQuery:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float
    answered: bool = False
    answer: dict[str, Any] | None = None


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        token = self.config.token or DEFAULT_TOKEN
        self.world = World(int(token.split(":", 1)[0]), self.config.bot_name,
                           self.config.bot_username)
        self.updates = UpdateQueue()
        self.stats = Stats()
        self.limiter = Limiter(self.config.limits, self.stats)
        self.callbacks: dict[str, CallbackQuery] = {}
        #: base URL once served (see :func:`relove.sandbox.server.running_sandbox`)
        self.url: str | None = None

    def set_bot_id(self, token: str) -> None:
        """The bot's id is the numeric part of the token the bot uses."""
        self.world.bot_id = int(token.split(":", 1)[0])

    def reset(self, *, keep_users: bool = False) -> None:
        """Forget messages, updates and counters (and users unless ``keep_users``)."""
        users = list(self.world.users.values()) if keep_users else []
        old = self.world
        self.world = World(old.bot_id, old.bot_name, old.bot_username)
        self.world.commands = old.commands
        for user in users:
            self.world.users[user.id] = user
            self.world.chats[user.id] = Chat(id=user.id, type=PRIVATE, members={user.id})
        for chat in old.chats.values():
            chat.touch()  # wake long polls on the old world
        self.updates.drop_pending()
        self.stats = Stats()
        self.limiter = Limiter(self.config.limits, self.stats)
        self.callbacks.clear()

    # --- checks for the bot side ------------------------------------------------------------
    def target_chat(self, chat_id: int) -> Chat:
        """The chat the bot writes to, or the Bot API error Telegram gives."""
        chat = self.world.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        if chat.type == PRIVATE:
            user = self.world.users[chat_id]
            if user.deactivated:
                raise ApiError(403, "Forbidden: user is deactivated")
            if user.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not user.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    def take_slot(self, chat: Chat, paid: bool) -> None:
        retry = self.limiter.acquire(chat.id, group=chat.type != PRIVATE, paid=paid)
        if retry:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    # --- users acting -----------------------------------------------------------------------
    def _active_user(self, uid: int) -> SimUser:
        user = self.world.users.get(uid)
        if user is None:
            raise ActionError(f"no simulated user {uid}", 404)
        if user.deactivated:
            raise ActionError(f"user {uid} is deactivated")
        if user.blocked:
            raise ActionError(f"user {uid} has blocked the bot; unblock first")
        return user

    def user_send(self, uid: int, text: str, *, chat_id: int | None = None,
                  reply_to: int | None = None) -> Message:
        """A simulated user writes ``text`` (a command like ``/start payload`` included)."""
        user = self._active_user(uid)
        text = text.strip()
        if not text:
            raise ActionError("text is empty", 400)
        if len(text) > TEXT_LIMIT:
            raise ActionError(f"text is longer than {TEXT_LIMIT} characters", 400)
        chat = self.world.chats.get(uid if chat_id is None else chat_id)
        if chat is None or uid not in chat.members:
            raise ActionError(f"user {uid} is not in chat {chat_id}", 404)
        user.started = True
        message = Message(message_id=chat.new_id(), chat_id=chat.id, sender=uid,
                          date=int(time.time()), text=text)
        m = _COMMAND.match(text)
        if m:
            message.entities = [{"type": "bot_command", "offset": 0, "length": m.end()}]
        if reply_to is not None and reply_to in chat.messages:
            message.reply_to = reply_to
        self._use_reply_keyboard(chat, text)
        chat.add(message)
        self.updates.push("message", message.to_telegram(self.world))
        return message

    def _use_reply_keyboard(self, chat: Chat, text: str) -> None:
        keyboard = chat.reply_keyboard
        if keyboard and keyboard.get("one_time_keyboard"):
            for row in keyboard.get("keyboard", []):
                for button in row:
                    label = button if isinstance(button, str) else button.get("text")
                    if label == text:
                        chat.reply_keyboard = None
                        return

    def user_press_reply_button(self, uid: int, text: str) -> Message:
        """A user presses a button of the reply keyboard the bot shows them."""
        chat = self.world.chats.get(uid)
        labels = []
        if chat and chat.reply_keyboard:
            for row in chat.reply_keyboard.get("keyboard", []):
                for button in row:
                    labels.append(button if isinstance(button, str) else button.get("text"))
        if text not in labels:
            raise ActionError(f"no reply-keyboard button {text!r} is shown to user {uid}", 404)
        return self.user_send(uid, text)

    def user_press_button(self, uid: int, message_id: int, *, data: str | None = None,
                          text: str | None = None, chat_id: int | None = None) -> CallbackQuery:
        """A user presses an inline button (found by callback_data or by its label)."""
        user = self._active_user(uid)
        chat = self.world.chats.get(uid if chat_id is None else chat_id)
        message = chat.messages.get(message_id) if chat else None
        if chat is None or message is None or message.deleted or not message.from_bot:
            raise ActionError(f"no bot message {message_id} in the chat of user {uid}", 404)
        markup = message.reply_markup or {}
        found = None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if "callback_data" not in button:
                    continue
                if (data is not None and button["callback_data"] == data) or (
                    data is None and text is not None and button.get("text") == text
                ):
                    found = button
        if found is None:
            raise ActionError(f"message {message_id} has no such callback button", 404)
        query = CallbackQuery(id=str(uuid.uuid4().int >> 64), user_id=uid, chat_id=chat.id,
                              message_id=message_id, data=found["callback_data"],
                              created=time.time())
        self.callbacks[query.id] = query
        payload = {
            "id": query.id,
            "from": user.tg_user(),
            "message": message.to_telegram(self.world),
            "chat_instance": str(abs(hash((chat.id, self.world.bot_id)))),
            "data": query.data,
        }
        self.updates.push("callback_query", payload)
        return query

    def set_blocked(self, uid: int, blocked: bool) -> SimUser:
        """A user blocks (or unblocks) the bot; the bot gets a ``my_chat_member`` update."""
        user = self.world.users.get(uid)
        if user is None:
            raise ActionError(f"no simulated user {uid}", 404)
        if user.blocked == blocked:
            return user
        user.blocked = blocked
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        bot = self.world.bot_user

        def member(status: str) -> dict[str, Any]:
            out: dict[str, Any] = {"status": status, "user": bot}
            if status == "kicked":
                out["until_date"] = 0
            return out

        self.updates.push("my_chat_member", {
            "chat": user.tg_chat(),
            "from": user.tg_user(),
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        })
        self.world.chats[uid].touch()
        self.world.users_version += 1
        return user

    def deactivate(self, uid: int) -> SimUser:
        user = self.world.users.get(uid)
        if user is None:
            raise ActionError(f"no simulated user {uid}", 404)
        user.deactivated = True
        self.world.chats[uid].touch()
        self.world.users_version += 1
        return user
