"""The sandbox's world, in memory: simulated users, chats and their messages.

Everything here is plain data with Telegram-shaped views (``tg_user``, ``tg_chat``,
``Message.to_telegram``); the Bot API and the control API read and change it. Each chat has a
``version`` bumped on every change, and waiters (the web chat, tests) long-poll on it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

PRIVATE = "private"
GROUP = "group"


@dataclass(slots=True)
class SimUser:
    """A simulated Telegram user."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    #: has pressed Start (or written to the bot) — the bot may write to them
    started: bool = False
    blocked: bool = False
    deactivated: bool = False
    created: float = field(default_factory=time.time)

    def tg_user(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        if self.is_premium:
            out["is_premium"] = True
        return out

    def tg_chat(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": PRIVATE, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "username": self.username,
            "language_code": self.language_code,
            "is_premium": self.is_premium,
            "started": self.started,
            "blocked": self.blocked,
            "deactivated": self.deactivated,
        }


@dataclass(slots=True)
class Message:
    """One message in a chat, from the bot (``sender`` None) or from a simulated user."""

    message_id: int
    chat_id: int
    sender: int | None
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    #: what the bot sent before parsing (for parse_mode HTML: the HTML source)
    source: str | None = None
    parse_mode: str | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    photo: list[dict[str, Any]] | None = None
    document: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    media_group_id: str | None = None
    #: sent with protect_content: it can't be forwarded or saved
    protected: bool = False
    #: sent through the bot's inline mode by this user (``via_bot``)
    via_bot: bool = False
    pinned: bool = False
    reply_markup: dict[str, Any] | None = None
    reply_to: int | None = None
    forward_origin: dict[str, Any] | None = None
    edit_date: int | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    paid: bool = False

    @property
    def from_bot(self) -> bool:
        return self.sender is None

    def to_telegram(self, world: World) -> dict[str, Any]:
        """The Bot API ``Message`` object."""
        chat = world.chats[self.chat_id]
        out: dict[str, Any] = {
            "message_id": self.message_id,
            "from": world.bot_user if self.sender is None else world.users[self.sender].tg_user(),
            "chat": chat.tg_chat(world),
            "date": self.date,
        }
        for key in ("media_group_id", "text", "entities", "caption", "caption_entities", "photo",
                    "document", "video"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.protected:
            out["has_protected_content"] = True
        if self.via_bot:
            out["via_bot"] = world.bot_user
        if self.edit_date:
            out["edit_date"] = self.edit_date
        if self.forward_origin:
            out["forward_origin"] = self.forward_origin
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            out["reply_markup"] = self.reply_markup
        if self.reply_to is not None and self.reply_to in chat.messages:
            replied = chat.messages[self.reply_to]
            out["reply_to_message"] = {
                k: v for k, v in replied.to_telegram(world).items() if k != "reply_to_message"
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """The control API's view: what a person would see, plus how the bot sent it."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "from_bot": self.sender is None,
            "sender": self.sender,
            "date": self.date,
            "text": self.text,
            "entities": self.entities or [],
            "html": self.source if self.parse_mode and self.parse_mode.lower() == "html" else None,
            "parse_mode": self.parse_mode,
            "caption": self.caption,
            "caption_entities": self.caption_entities or [],
            "photo": self.photo,
            "document": self.document,
            "video": self.video,
            "media_group_id": self.media_group_id,
            "protected": self.protected,
            "via_bot": self.via_bot,
            "pinned": self.pinned,
            "reply_markup": self.reply_markup,
            "reply_to": self.reply_to,
            "forwarded": self.forward_origin is not None,
            "edited": self.edit_date is not None,
            "edit_date": self.edit_date,
            "edits": self.edits,
            "deleted": self.deleted,
            "paid": self.paid,
        }


@dataclass(slots=True)
class Chat:
    id: int
    type: str
    title: str | None = None
    members: set[int] = field(default_factory=set)
    messages: dict[int, Message] = field(default_factory=dict)
    next_message_id: int = 1
    #: the reply keyboard the bot showed last (until removed or used once)
    reply_keyboard: dict[str, Any] | None = None
    action: str | None = None
    action_until: float = 0.0
    version: int = 0
    closing: bool = False
    #: the bot is an administrator of this group (it then sees every message, privacy or not)
    bot_admin: bool = False
    #: pinned message ids, the most recent last
    pinned: list[int] = field(default_factory=list)
    #: the group's creator (its first member)
    creator: int | None = None
    _changed: asyncio.Event | None = None

    def tg_chat(self, world: World) -> dict[str, Any]:
        if self.type == PRIVATE:
            return world.users[self.id].tg_chat()
        return {"id": self.id, "type": self.type, "title": self.title or "Group"}

    def add(self, message: Message) -> Message:
        self.messages[message.message_id] = message
        self.touch()
        return message

    def new_id(self) -> int:
        mid = self.next_message_id
        self.next_message_id += 1
        return mid

    def touch(self) -> None:
        self.version += 1
        event = self._changed
        if event is not None:
            self._changed = None
            event.set()

    async def wait_change(self, since: int, timeout: float) -> None:
        """Return when ``version`` exceeds ``since`` or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.version <= since and not self.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return

    def summary(self) -> dict[str, Any]:
        typing = self.action if self.action and self.action_until > time.time() else None
        return {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "version": self.version,
            "reply_keyboard": self.reply_keyboard,
            "action": typing,
            "members": sorted(self.members),
            "bot_admin": self.bot_admin,
            "pinned": list(self.pinned),
        }


class World:
    """All users and chats of the sandbox's one bot."""

    def __init__(self, bot_id: int, bot_name: str, bot_username: str) -> None:
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.bot_username = bot_username
        self.users: dict[int, SimUser] = {}
        self.chats: dict[int, Chat] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_paths: dict[str, str] = {}
        self.next_user_id = 100_000_001
        self.next_group_id = -1_000_000_001
        self.users_version = 0
        #: privacy mode off (BotFather /setprivacy Disable): the bot reads every group message
        self.can_read_all_group_messages = False
        #: inline mode on (BotFather /setinline): users can send it inline queries
        self.inline_mode = True

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    def add_user(self, **fields: Any) -> SimUser:
        uid = fields.pop("id", None)
        if uid is None:
            while self.next_user_id in self.users:
                self.next_user_id += 1
            uid = self.next_user_id
            self.next_user_id += 1
        uid = int(uid)
        if uid <= 0:
            raise ValueError("user id must be a positive integer")
        if uid in self.users:
            raise ValueError(f"user {uid} already exists")
        first_name = fields.pop("first_name", None)
        if not isinstance(first_name, str) or not first_name.strip():
            raise ValueError("first_name is required (a string)")
        first_name = first_name.strip()
        allowed = {"last_name", "username", "language_code", "is_premium", "started"}
        unknown = set(fields) - allowed - {"blocked", "deactivated"}
        if unknown:
            raise ValueError(f"unknown user fields: {', '.join(sorted(unknown))}")
        # Types are checked here: the user goes into every update, and one malformed field
        # would make the bot's library reject a whole getUpdates batch and stall polling.
        for key, kind, name in (
            ("last_name", str, "a string"), ("username", str, "a string"),
            ("language_code", str, "a string"), ("is_premium", bool, "true or false"),
            ("started", bool, "true or false"), ("blocked", bool, "true or false"),
            ("deactivated", bool, "true or false"),
        ):
            if fields.get(key) is not None and not isinstance(fields[key], kind):
                raise ValueError(f"{key} must be {name}")
        user = SimUser(id=uid, first_name=first_name[:64])
        for key in allowed | {"blocked", "deactivated"}:
            if fields.get(key) is not None:
                setattr(user, key, fields[key])
        if user.username:
            user.username = str(user.username).lstrip("@")[:32]
        self.users[uid] = user
        self.chats[uid] = Chat(id=uid, type=PRIVATE, members={uid})
        self.users_version += 1
        return user

    def add_group(self, title: str, members: list[int], *, bot_admin: bool = False) -> Chat:
        for uid in members:
            if uid not in self.users:
                raise KeyError(uid)
        chat = Chat(id=self.next_group_id, type=GROUP, title=title[:128], members=set(members),
                    bot_admin=bot_admin)
        chat.creator = members[0] if members else None
        self.next_group_id -= 1
        self.chats[chat.id] = chat
        return chat

    def user(self, uid: int) -> SimUser:
        return self.users[uid]

    def store_file(self, data: bytes | None, *, kind: str, name: str | None, mime: str | None,
                   url: str | None = None) -> dict[str, Any]:
        n = len(self.files) + 1
        file_id = f"sandbox-{kind}-{n:08d}"
        suffix = PurePosixPath(name or "").suffix.lower()
        suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""
        path = f"{kind}s/file_{n}{suffix}"
        record: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"u{n:08d}",
            "kind": kind,
            "name": name,
            "mime": mime,
            "url": url,
            "data": data,
            "size": len(data) if data is not None else 0,
            #: where getFile says it can be downloaded (GET /file/bot<token>/<path>)
            "path": path,
        }
        self.files[file_id] = record
        self.file_paths[path] = file_id
        return record
