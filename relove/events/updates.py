"""What an incoming Telegram update says happened: its touch events.

A pure function of the update (no I/O, no aiogram import at run time — it reads attributes):

* a message → ``message.received`` (``message_id``, ``type``: text, photo, sticker …, ``chat``:
  private, group …), or ``command.used`` (``command``, ``payload``, ``message_id``) when it is a
  bot command (``/start abc``); a private message also carries its text for the conversation;
* a callback query → ``button.pressed`` (``data``, ``text``: the button's label when the message
  still shows it, ``message_id``);
* ``my_chat_member`` in a private chat → ``user.blocked`` (kicked) / ``user.unblocked`` (member).

``user.created`` is not here: only the touch's upsert knows whether its row was new.
The touch batch records these with :class:`relove.events.BatchInsert`, in the same statement
(PostgreSQL) or transaction (SQLite) as its upsert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relove.events.catalog import (
    BUTTON_PRESSED,
    COMMAND_USED,
    MESSAGE_RECEIVED,
    USER_BLOCKED,
    USER_UNBLOCKED,
    EventSource,
)
from relove.events.record import NewEvent, NewMessage, incoming_event_row

if TYPE_CHECKING:
    from aiogram.types import CallbackQuery, Message, Update

#: Longest command payload / callback data kept in event props.
PAYLOAD_MAX_CHARS = 1024

_BOT = EventSource.bot.value


#: An event of an update: user id, name, props, the conversation's message (kind, text,
#: message id) or None.
_Found = tuple[int, str, dict[str, Any], tuple[str, str | None, int | None] | None]


def events_of_update(update: Update) -> list[NewEvent]:
    """The touch events of one update (empty for updates without a human user)."""
    found = _event_of_update(update)
    if found is None:
        return []
    user_id, name, props, message = found
    conversation = NewMessage(*message) if message is not None else None
    return [NewEvent(user_id, name, props, source=_BOT, message=conversation)]


def event_rows_of_update(update: Update) -> list[list[Any]]:
    """The same events as :func:`events_of_update`, already as elements of the events batch
    array (:func:`relove.events.record.incoming_event_row`): the touch builds them for every
    update, so without the objects in between."""
    found = _event_of_update(update)
    if found is None:
        return []
    user_id, name, props, message = found
    return [incoming_event_row(user_id, name, props, _BOT, message)]


def _event_of_update(update: Update) -> _Found | None:
    if update.message is not None:
        return _message_event(update.message)
    if update.callback_query is not None:
        return _button_event(update.callback_query)
    member = update.my_chat_member
    if member is not None and member.chat.type == "private" and not member.from_user.is_bot:
        status = member.new_chat_member.status
        if status == "kicked":
            return member.from_user.id, USER_BLOCKED, {}, None
        if status == "member":
            return member.from_user.id, USER_UNBLOCKED, {}, None
    return None


def _clip(value: str | None, limit: int = PAYLOAD_MAX_CHARS) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


def parse_command(text: str) -> tuple[str, str] | None:
    """``/start abc`` → ``("start", "abc")``; ``/help@MyBot`` → ``("help", "")``; else None."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, payload = text[1:].partition(" ")
    command = head.split("@", 1)[0]
    if not command or not all(c.isalnum() or c == "_" for c in command):
        return None
    return command.lower(), payload.strip()


def _message_event(message: Message) -> _Found | None:
    user = message.from_user
    if user is None or user.is_bot:
        return None
    private = message.chat.type == "private"
    text = message.text
    if text:  # what content_type says first (it looks through the message's fields)
        kind = "text"
        command = parse_command(text) if text[0] == "/" else None
    else:
        if text is None:
            text = message.caption
        content_type = message.content_type
        kind = str(getattr(content_type, "value", content_type))
        command = None
    props: dict[str, Any]
    if command is not None:
        name = COMMAND_USED
        props = {"command": command[0], "payload": _clip(command[1]),
                 "message_id": message.message_id}  # fmt: skip
        kind = "command"
    else:
        name = MESSAGE_RECEIVED
        props = {"message_id": message.message_id, "type": kind}
    if not private:
        props["chat"] = str(message.chat.type)
    return user.id, name, props, (kind, text, message.message_id) if private else None


def _button_label(query: CallbackQuery) -> str | None:
    message = query.message
    markup = getattr(message, "reply_markup", None) if message is not None else None
    for row in getattr(markup, "inline_keyboard", None) or []:
        for button in row:
            if button.callback_data == query.data:
                return str(button.text)
    return None


def _button_event(query: CallbackQuery) -> _Found | None:
    if query.from_user.is_bot:
        return None
    label = _button_label(query)
    props: dict[str, Any] = {"data": _clip(query.data)}
    if label is not None:
        props["text"] = _clip(label, 256)
    message = query.message
    message_id = getattr(message, "message_id", None)
    if message_id is not None:
        props["message_id"] = message_id
    chat = getattr(message, "chat", None)
    private = chat is not None and chat.type == "private"
    conversation = ("button", label or query.data, None) if private else None
    return query.from_user.id, BUTTON_PRESSED, props, conversation
