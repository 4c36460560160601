"""Bot API methods of the sandbox; each takes the :class:`Sandbox` and the call's
:class:`Params` and returns the ``result`` or raises :class:`ApiError` with the official
server's wording (tdlib/telegram-bot-api, ``Client.cpp``), checking in the same order.

This module has the text messages (send, edit, copy, forward, delete) and the registry
:data:`METHODS`; media, chats and inline mode are in their own modules.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from relove.sandbox import chats, inline, media
from relove.sandbox.core import ApiError, Sandbox, bad_request
from relove.sandbox.markup import inline_only, reply_markup
from relove.sandbox.outgoing import Outgoing, new_message
from relove.sandbox.params import Params, lenient_int
from relove.sandbox.state import GROUP, Chat, Message
from relove.sandbox.text import finish, parse
from relove.sandbox.webhook import delete_webhook, get_updates, set_webhook, webhook_info

Method = Callable[[Sandbox, Params], Awaitable[Any]]
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
PROTECTED = "message has protected content and can't be forwarded"


async def send_message(sb: Sandbox, p: Params) -> Any:
    raw = p.raw("text")
    if not raw:
        raise bad_request("message text is empty")
    parsed = parse(raw, p, "entities")
    out = Outgoing.check(sb, p)
    text, entities = finish(parsed, sb.world, kind="text")
    message = new_message(out.chat)
    message.text, message.entities = text, entities or None
    message.source, message.parse_mode = parsed.source, parsed.mode
    return out.deliver(sb, message).to_telegram(sb.world)


def _source(sb: Sandbox, p: Params, verb: str) -> Message:
    """The message copied or forwarded: ``from_chat_id`` and ``message_id``."""
    from_chat = p.raw("from_chat_id")
    if not from_chat:
        raise bad_request('parameter "from_chat_id" is required')
    chat = sb.world.chats.get(lenient_int(from_chat))
    if chat is None:
        raise bad_request("chat not found")
    message = chat.messages.get(p.message_id())
    if message is None or message.deleted:
        raise bad_request(f"message to {verb} not found")
    return message


def _same_content(src: Message, copy: Message) -> None:
    copy.text, copy.entities, copy.source, copy.parse_mode = (
        src.text, src.entities, src.source, src.parse_mode)
    copy.caption, copy.caption_entities = src.caption, src.caption_entities
    copy.photo, copy.document, copy.video = src.photo, src.document, src.video


async def copy_message(sb: Sandbox, p: Params) -> Any:
    caption = parse(p.raw("caption"), p, "caption_entities") if "caption" in p.values else None
    src = _source(sb, p, "copy")
    out = Outgoing.check(sb, p)
    if src.protected:
        raise bad_request(PROTECTED)
    copy = new_message(out.chat)
    _same_content(src, copy)
    if caption is not None and (src.photo or src.document or src.video):
        plain, entities = finish(caption, sb.world, kind="caption")
        copy.caption, copy.caption_entities = plain or None, entities or None
        copy.source, copy.parse_mode = caption.source, caption.mode
    if out.markup is None and src.reply_markup and src.reply_markup.get("inline_keyboard"):
        out.markup = src.reply_markup
    out.deliver(sb, copy)
    return {"message_id": copy.message_id}


async def forward_message(sb: Sandbox, p: Params) -> Any:
    src = _source(sb, p, "forward")
    out = Outgoing.check(sb, p)
    if src.protected:
        raise bad_request(PROTECTED)
    author = sb.world.bot_user if src.sender is None else sb.world.users[src.sender].tg_user()
    fwd = new_message(out.chat)
    _same_content(src, fwd)
    fwd.forward_origin = {"type": "user", "sender_user": author, "date": src.date}
    out.markup = None
    out.reply_to = None
    return out.deliver(sb, fwd).to_telegram(sb.world)


def _editable(sb: Sandbox, p: Params) -> tuple[Chat, Message] | None:
    """The message an edit targets (None for an inline message), or the official error."""
    chat_id = p.raw("chat_id")
    message_id = p.message_id()
    if not chat_id and message_id == 0:
        inline_id = p.raw("inline_message_id")
        if not inline_id:
            raise bad_request("message identifier is not specified")
        found = sb.inline_messages.get(inline_id)
        if found is None:
            raise bad_request("MESSAGE_ID_INVALID")
        chat = sb.world.chats[found[0]]
        return chat, chat.messages[found[1]]
    chat = sb.target_chat(p.chat_id())
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        raise bad_request("message to edit not found")
    if not message.from_bot or message.forward_origin:
        raise bad_request("message can't be edited")
    return chat, message


def _edited(sb: Sandbox, chat: Chat, message: Message) -> Any:
    """The answer of an edit: the message, or True for an inline message."""
    message.edits.append({"text": message.text, "caption": message.caption,
                          "reply_markup": message.reply_markup,
                          "date": message.edit_date or message.date})
    message.edit_date = int(time.time())
    chat.touch()
    if not message.from_bot:  # sent through inline mode: the bot gets no message back
        return True
    return message.to_telegram(sb.world)


async def edit_message_text(sb: Sandbox, p: Params) -> Any:
    raw = p.raw("text")
    if not raw:
        raise bad_request("message text is empty")
    parsed = parse(raw, p, "entities")
    markup = inline_only(reply_markup(p))
    target = _editable(sb, p)
    assert target is not None
    chat, message = target
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, entities = finish(parsed, sb.world, kind="text")
    if text == message.text and (entities or None) == message.entities and (
            markup == message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    result = _edited(sb, chat, message)
    message.text, message.entities = text, entities or None
    message.source, message.parse_mode = parsed.source, parsed.mode
    message.reply_markup = markup
    return _answer(sb, message, result)


def _answer(sb: Sandbox, message: Message, result: Any) -> Any:
    return result if result is True else message.to_telegram(sb.world)


async def edit_message_caption(sb: Sandbox, p: Params) -> Any:
    markup = inline_only(reply_markup(p))
    parsed = parse(p.raw("caption"), p, "caption_entities")
    target = _editable(sb, p)
    assert target is not None
    chat, message = target
    if not (message.photo or message.document or message.video):
        raise bad_request("there is no caption in the message to edit")
    caption, entities = finish(parsed, sb.world, kind="caption")
    if caption == (message.caption or "") and markup == message.reply_markup:
        raise bad_request(NOT_MODIFIED)
    result = _edited(sb, chat, message)
    message.caption, message.caption_entities = caption or None, entities or None
    message.source, message.parse_mode = parsed.source, parsed.mode
    message.reply_markup = markup
    return _answer(sb, message, result)


async def edit_message_reply_markup(sb: Sandbox, p: Params) -> Any:
    markup = inline_only(reply_markup(p))
    target = _editable(sb, p)
    assert target is not None
    chat, message = target
    if markup == message.reply_markup or (not markup and not message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    result = _edited(sb, chat, message)
    message.reply_markup = markup
    return _answer(sb, message, result)


async def delete_message(sb: Sandbox, p: Params) -> Any:
    if not p.raw("chat_id"):
        raise bad_request("chat identifier is not specified")
    message_id = p.message_id()
    if message_id == 0:
        raise bad_request("message identifier is not specified")
    chat = sb.world.chats.get(p.chat_id())
    if chat is None:
        raise bad_request("chat not found")
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        raise bad_request("message to delete not found")
    if chat.type == GROUP and not message.from_bot and not chat.bot_admin:
        raise bad_request("message can't be deleted")
    message.deleted = True
    chat.touch()
    return True


async def accept(sb: Sandbox, p: Params) -> Any:
    return True


METHODS: dict[str, Method] = {
    "getme": chats.get_me,
    "getupdates": get_updates,
    "setwebhook": set_webhook,
    "deletewebhook": delete_webhook,
    "getwebhookinfo": webhook_info,
    "sendmessage": send_message,
    "sendphoto": media.send_photo,
    "senddocument": media.send_document,
    "sendvideo": media.send_video,
    "sendmediagroup": media.send_media_group,
    "getfile": media.get_file,
    "copymessage": copy_message,
    "forwardmessage": forward_message,
    "editmessagetext": edit_message_text,
    "editmessagecaption": edit_message_caption,
    "editmessagereplymarkup": edit_message_reply_markup,
    "deletemessage": delete_message,
    "answercallbackquery": inline.answer_callback_query,
    "answerinlinequery": inline.answer_inline_query,
    "sendchataction": chats.send_chat_action,
    "setmycommands": chats.set_my_commands,
    "getmycommands": chats.get_my_commands,
    "deletemycommands": chats.delete_my_commands,
    "getchat": chats.get_chat,
    "getchatmember": chats.get_chat_member,
    "pinchatmessage": chats.pin_chat_message,
    "unpinchatmessage": chats.unpin_chat_message,
    "unpinallchatmessages": chats.unpin_all_chat_messages,
    "setmydescription": accept,
    "setmyshortdescription": accept,
    "setchatmenubutton": accept,
    "logout": accept,
    "close": accept,
}


def _known_methods() -> dict[str, str]:
    lines = (Path(__file__).parent / "botapi_methods.txt").read_text(encoding="utf-8")
    return {name.lower(): name for name in lines.splitlines()
            if name and not name.startswith("#")}


#: every method of the Bot API (lower case -> its name), from the spec (bench/botapi_spec_gen.py)
KNOWN_METHODS = _known_methods()


def find_method(name: str) -> Method:
    """The implementation of a Bot API method: 404 for a name the Bot API does not have, 400
    for one the sandbox does not implement (so clients don't report a wrong token)."""
    key = name.lower()
    impl = METHODS.get(key)
    if impl is not None:
        return impl
    if key in KNOWN_METHODS:
        raise bad_request(f"method {KNOWN_METHODS[key]} is not supported by the sandbox "
                          "(see docs/sandbox.md)")
    raise ApiError(404, "Not Found")
