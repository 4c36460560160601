"""The sandbox: one simulated bot with its users, update queue, flood limits and counters.

The Bot API routes (:mod:`relove.sandbox.botapi`) act as the bot; the control API
(:mod:`relove.sandbox.control`) and the web chat act as the users through the ``user_*`` methods
here, which produce the updates the bot receives.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from relove.sandbox.apierrors import ApiError, bad_request
from relove.sandbox.limits import LimitConfig, Limiter, Stats
from relove.sandbox.state import PRIVATE, Chat, Message, SimUser, World
from relove.sandbox.text import clean_user_text
from relove.sandbox.updates import UpdateQueue
from relove.telegram.limits import TEXT_LIMIT, utf16_len

DEFAULT_TOKEN = "123456789:sandbox-token-for-local-development"
__all__ = ["DEFAULT_TOKEN", "ActionError", "ApiError", "Sandbox", "SandboxConfig", "bad_request"]


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
    #: host names or addresses answered besides loopback ones and ``host`` (``--allow-host``)
    allowed_hosts: tuple[str, ...] = ()


@dataclass(slots=True)
class InlineQuery:
    id: str
    user_id: int
    query: str
    offset: str
    created: float
    answered: bool = False
    answer: dict[str, Any] | None = None


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
        self.inline_queries: dict[str, InlineQuery] = {}
        #: inline_message_id -> (chat id, message id) of messages sent through inline mode
        self.inline_messages: dict[str, tuple[int, int]] = {}
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
        self.world.can_read_all_group_messages = old.can_read_all_group_messages
        self.world.inline_mode = old.inline_mode
        for user in users:
            self.world.users[user.id] = user
            self.world.chats[user.id] = Chat(id=user.id, type=PRIVATE, members={user.id})
        for chat in old.chats.values():
            chat.touch()  # wake long polls on the old world
        self.updates.drop_pending()
        self.stats = Stats()
        self.limiter = Limiter(self.config.limits, self.stats)
        self.callbacks.clear()
        self.inline_queries.clear()
        self.inline_messages.clear()

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
        """A simulated user writes ``text`` (a command like ``/start payload`` included).

        In a group the bot only hears it if it may (:meth:`bot_hears`): privacy mode."""
        user = self._active_user(uid)
        text, entities = clean_user_text(text)
        if not text:
            raise ActionError("text is empty", 400)
        if utf16_len(text) > TEXT_LIMIT:
            raise ActionError(f"text is longer than {TEXT_LIMIT} characters", 400)
        chat = self.world.chats.get(uid if chat_id is None else chat_id)
        if chat is None or uid not in chat.members:
            raise ActionError(f"user {uid} is not in chat {chat_id}", 404)
        user.started = True
        message = Message(message_id=chat.new_id(), chat_id=chat.id, sender=uid,
                          date=int(time.time()), text=text, entities=entities or None)
        if reply_to is not None and reply_to in chat.messages:
            message.reply_to = reply_to
        self._use_reply_keyboard(chat, text)
        chat.add(message)
        if self.bot_hears(chat, message):
            self.updates.push("message", message.to_telegram(self.world))
        return message

    def bot_hears(self, chat: Chat, message: Message) -> bool:
        """Whether the bot gets a user's message: always in private chats; in groups, with
        privacy mode on (Telegram's default) only commands (``/cmd``, or ``/cmd@thisbot``, never
        ``/cmd@otherbot``), replies to the bot's messages and mentions of ``@thisbot`` — unless
        the bot reads all group messages or is an administrator of the group."""
        world = self.world
        if chat.type == PRIVATE or world.can_read_all_group_messages or chat.bot_admin:
            return True
        replied = chat.messages.get(message.reply_to) if message.reply_to else None
        if replied is not None and replied.from_bot:
            return True
        me = "@" + world.bot_username.lower()
        units = (message.text or "").encode("utf-16-le", "surrogatepass")
        for entity in message.entities or []:
            if entity["type"] not in ("bot_command", "mention"):
                continue
            start = 2 * entity["offset"]
            value = units[start:start + 2 * entity["length"]].decode(
                "utf-16-le", "surrogatepass").lower()
            if entity["type"] == "mention" and value == me:
                return True
            if entity["type"] == "bot_command" and entity["offset"] == 0 and (
                    "@" not in value or value.endswith(me)):
                return True
        return False

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

    def user_inline_query(self, uid: int, query: str, *, offset: str = "") -> InlineQuery:
        """A user types ``@bot query`` in a chat: the bot gets an ``inline_query`` update."""
        user = self._active_user(uid)
        if not self.world.inline_mode:
            raise ActionError("the bot has no inline mode (PATCH /api/bot inline_mode=true)")
        if len(query) > 256:
            raise ActionError("an inline query is at most 256 characters", 400)
        inline = InlineQuery(id=str(uuid.uuid4().int >> 64), user_id=uid, query=query,
                             offset=offset, created=time.time())
        self.inline_queries[inline.id] = inline
        self.updates.push("inline_query", {"id": inline.id, "from": user.tg_user(),
                                           "query": query, "offset": offset,
                                           "chat_type": "sender"})
        return inline

    def user_choose_inline_result(self, uid: int, query_id: str, result_id: str) -> Message:
        """The user picks one of the answered results: it is sent to their chat with the bot
        "via @bot", and the bot gets a ``chosen_inline_result`` update."""
        user = self._active_user(uid)
        inline = self.inline_queries.get(query_id)
        if inline is None or inline.user_id != uid or not inline.answered or not inline.answer:
            raise ActionError(f"inline query {query_id} has no answer for user {uid}", 404)
        result = next((r for r in inline.answer["results"] if r.get("id") == result_id), None)
        if result is None:
            raise ActionError(f"no inline result {result_id!r}", 404)
        content = result.get("input_message_content") or {}
        text = content.get("message_text") or result.get("title") or result.get("caption")
        if not isinstance(text, str) or not text.strip():
            raise ActionError("the sandbox can send only text inline results", 409)
        chat = self.world.chats[uid]
        text, entities = clean_user_text(text)
        message = Message(message_id=chat.new_id(), chat_id=chat.id, sender=uid,
                          date=int(time.time()), text=text, entities=entities or None,
                          via_bot=True, reply_markup=result.get("reply_markup"))
        chat.add(message)
        self.updates.push("message", message.to_telegram(self.world))
        inline_message_id = f"sb{chat.id}_{message.message_id}"
        self.inline_messages[inline_message_id] = (chat.id, message.message_id)
        chosen: dict[str, Any] = {"result_id": result_id, "from": user.tg_user(),
                                  "query": inline.query}
        if result.get("reply_markup"):
            chosen["inline_message_id"] = inline_message_id
        self.updates.push("chosen_inline_result", chosen)
        return message

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
