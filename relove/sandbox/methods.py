"""Bot API methods of the sandbox; each takes the :class:`Sandbox` and the call's
:class:`Params` and returns the ``result`` or raises :class:`ApiError` with Telegram's wording."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from relove.sandbox.core import Sandbox, bad_request
from relove.sandbox.params import MAX_UPLOAD, Params
from relove.sandbox.state import PRIVATE, Chat, Message
from relove.sandbox.webhook import delete_webhook, get_updates, set_webhook, webhook_info
from relove.telegram.html import EntityParseError, parse_html
from relove.telegram.limits import CAPTION_LIMIT, TEXT_LIMIT, utf16_len

Method = Callable[[Sandbox, Params], Awaitable[Any]]
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
BUTTON_KINDS = frozenset({
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
})
_BOT_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
TEXT_FIELD = "Field \"text\" must be of type String"
ONE_FIELD = "InlineKeyboardButton must have exactly one optional field"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


def formatted(text: str, p: Params, *, entities_key: str, limit: int, kind: str
              ) -> tuple[str, list[dict[str, Any]], str | None]:
    """Plain text, entities and parse mode of a text or caption, checked like Telegram."""
    mode = p.str("parse_mode")
    entities: list[dict[str, Any]] = []
    if mode is None:
        plain = text
        given = p.json(entities_key)
        if isinstance(given, list):
            entities = given
    elif mode.lower() == "html":
        try:
            plain, entities = parse_html(text)
        except EntityParseError as e:
            raise bad_request(f"can't parse entities: {e}") from None
    elif mode.lower() in ("markdown", "markdownv2"):
        plain = text  # accepted as is: the product formats with HTML
    else:
        raise bad_request("unsupported parse_mode")
    if kind == "text" and not plain.strip():
        raise bad_request("message text is empty")
    if utf16_len(plain) > limit:
        raise bad_request("message is too long" if kind == "text"
                          else "message caption is too long")
    return plain, entities, mode


def reply_markup(p: Params) -> dict[str, Any] | None:
    markup = p.json("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline(markup["inline_keyboard"])
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        for row in rows:
            for button in row:
                label = button if isinstance(button, str) else (
                    button.get("text") if isinstance(button, dict) else None)
                if not isinstance(label, str) or not label:
                    raise bad_request(f"can't parse keyboard button: {TEXT_FIELD}")
    elif not (markup.get("remove_keyboard") or markup.get("force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _check_inline(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(f"can't parse inline keyboard button: {TEXT_FIELD}")
            kinds = BUTTON_KINDS.intersection(button)
            if len(kinds) != 1:
                raise bad_request(f"can't parse inline keyboard button: {ONE_FIELD}")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button:
                url = str(button["url"])
                if not re.match(r"^(https?|tg)://\S+$", url):
                    raise bad_request(
                        f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _apply_keyboard(chat: Chat, markup: dict[str, Any] | None) -> None:
    if not markup:
        return
    if "keyboard" in markup:
        chat.reply_keyboard = markup
    elif markup.get("remove_keyboard"):
        chat.reply_keyboard = None


def _reply_to(chat: Chat, p: Params) -> int | None:
    params = p.json("reply_parameters")
    mid = params.get("message_id") if isinstance(params, dict) else p.int("reply_to_message_id")
    if mid is None:
        return None
    message = chat.messages.get(int(mid))
    if message is None or message.deleted:
        allow = p.bool("allow_sending_without_reply") or (
            isinstance(params, dict) and params.get("allow_sending_without_reply"))
        if allow:
            return None
        raise bad_request("message to be replied not found")
    return int(mid)


async def send_message(sb: Sandbox, p: Params) -> Any:
    chat = sb.target_chat(p.chat_id())
    text = p.str("text")
    if text is None:
        raise bad_request("message text is empty")
    plain, entities, mode = formatted(text, p, entities_key="entities", limit=TEXT_LIMIT,
                                      kind="text")
    markup = reply_markup(p)
    reply_to = _reply_to(chat, p)
    message = Message(message_id=0, chat_id=chat.id, sender=None, date=int(time.time()),
                      text=plain, entities=entities or None, source=text, parse_mode=mode,
                      reply_to=reply_to)
    sb.take_slot(chat, p.bool("allow_paid_broadcast"))
    message.message_id = chat.new_id()
    message.paid = p.bool("allow_paid_broadcast")
    message.reply_markup = markup
    chat.add(message)
    _apply_keyboard(chat, markup)
    chat.action = None
    return message.to_telegram(sb.world)


def _input_file(sb: Sandbox, p: Params, name: str, kind: str) -> dict[str, Any]:
    value, upload = p.file(name)
    if upload is not None:
        data = upload.file.read(MAX_UPLOAD + 1)
        if len(data) > (10 * 1024 * 1024 if kind == "photo" else MAX_UPLOAD):
            raise bad_request("file is too big")
        return sb.world.store_file(data, kind=kind, name=upload.filename,
                                   mime=upload.content_type)
    if value is None:
        raise bad_request(f"there is no {name} in the request")
    if value in sb.world.files:
        return sb.world.files[value]
    if value.startswith(("http://", "https://")):
        return sb.world.store_file(None, kind=kind, name=value.rsplit("/", 1)[-1] or None,
                                   mime=None, url=value)
    raise bad_request("wrong file identifier/HTTP URL specified")


def _media_message(sb: Sandbox, chat: Chat, p: Params, kind: str) -> Message:
    record = _input_file(sb, p, kind, kind)
    caption = p.str("caption")
    plain = None
    entities: list[dict[str, Any]] = []
    mode = None
    if caption is not None:
        plain, entities, mode = formatted(caption, p, entities_key="caption_entities",
                                          limit=CAPTION_LIMIT, kind="caption")
    message = Message(message_id=0, chat_id=chat.id, sender=None, date=int(time.time()),
                      caption=plain, caption_entities=entities or None, source=caption,
                      parse_mode=mode, reply_to=_reply_to(chat, p))
    base = {"file_id": record["file_id"], "file_unique_id": record["file_unique_id"],
            "file_size": record["size"]}
    if kind == "photo":
        message.photo = [{**base, "width": 512, "height": 512}]
    else:
        message.document = {**base, "file_name": record["name"] or "document",
                             "mime_type": record["mime"] or "application/octet-stream"}
    return message


async def send_photo(sb: Sandbox, p: Params) -> Any:
    return await _send_media(sb, p, "photo")


async def send_document(sb: Sandbox, p: Params) -> Any:
    return await _send_media(sb, p, "document")


async def _send_media(sb: Sandbox, p: Params, kind: str) -> Any:
    chat = sb.target_chat(p.chat_id())
    message = _media_message(sb, chat, p, kind)
    markup = reply_markup(p)
    sb.take_slot(chat, p.bool("allow_paid_broadcast"))
    message.message_id = chat.new_id()
    message.paid = p.bool("allow_paid_broadcast")
    message.reply_markup = markup
    chat.add(message)
    _apply_keyboard(chat, markup)
    chat.action = None
    return message.to_telegram(sb.world)


def _source(sb: Sandbox, p: Params, verb: str) -> Message:
    chat = sb.world.chats.get(p.chat_id("from_chat_id"))
    if chat is None:
        raise bad_request("chat not found")
    message = chat.messages.get(p.int("message_id", required=True) or 0)
    if message is None or message.deleted:
        raise bad_request(f"message to {verb} not found")
    return message


async def copy_message(sb: Sandbox, p: Params) -> Any:
    chat = sb.target_chat(p.chat_id())
    src = _source(sb, p, "copy")
    copy = Message(message_id=0, chat_id=chat.id, sender=None, date=int(time.time()),
                   text=src.text, entities=src.entities, source=src.source,
                   parse_mode=src.parse_mode, caption=src.caption,
                   caption_entities=src.caption_entities, photo=src.photo, document=src.document,
                   reply_to=_reply_to(chat, p))
    if p.has("caption") and (src.photo or src.document):
        copy.caption, entities, copy.parse_mode = formatted(
            p.str("caption") or "", p, entities_key="caption_entities", limit=CAPTION_LIMIT,
            kind="caption")
        copy.caption_entities = entities or None
        copy.source = p.str("caption")
    markup = reply_markup(p)
    if markup is None and src.reply_markup and "inline_keyboard" in src.reply_markup:
        markup = src.reply_markup
    sb.take_slot(chat, p.bool("allow_paid_broadcast"))
    copy.message_id = chat.new_id()
    copy.reply_markup = markup
    chat.add(copy)
    _apply_keyboard(chat, markup)
    return {"message_id": copy.message_id}


async def forward_message(sb: Sandbox, p: Params) -> Any:
    chat = sb.target_chat(p.chat_id())
    src = _source(sb, p, "forward")
    author = sb.world.bot_user if src.sender is None else sb.world.users[src.sender].tg_user()
    fwd = Message(message_id=0, chat_id=chat.id, sender=None, date=int(time.time()),
                  text=src.text, entities=src.entities, source=src.source,
                  parse_mode=src.parse_mode, caption=src.caption,
                  caption_entities=src.caption_entities, photo=src.photo, document=src.document,
                  forward_origin={"type": "user", "sender_user": author, "date": src.date})
    sb.take_slot(chat, p.bool("allow_paid_broadcast"))
    fwd.message_id = chat.new_id()
    chat.add(fwd)
    return fwd.to_telegram(sb.world)


def _editable(sb: Sandbox, p: Params) -> tuple[Chat, Message]:
    if p.has("inline_message_id"):
        raise bad_request("inline messages are not supported by the sandbox")
    chat = sb.target_chat(p.chat_id())
    message = chat.messages.get(p.int("message_id", required=True) or 0)
    if message is None or message.deleted:
        raise bad_request("message to edit not found")
    if not message.from_bot or message.forward_origin:
        raise bad_request("message can't be edited")
    return chat, message


def _inline_only(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    if markup is not None and "inline_keyboard" not in markup:
        raise bad_request("inline keyboard expected")
    return markup


def _record_edit(chat: Chat, message: Message) -> None:
    message.edits.append({"text": message.text, "caption": message.caption,
                          "reply_markup": message.reply_markup,
                          "date": message.edit_date or message.date})
    message.edit_date = int(time.time())
    chat.touch()


async def edit_message_text(sb: Sandbox, p: Params) -> Any:
    chat, message = _editable(sb, p)
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text = p.str("text")
    if text is None:
        raise bad_request("text must be non-empty")
    plain, entities, mode = formatted(text, p, entities_key="entities", limit=TEXT_LIMIT,
                                      kind="text")
    markup = _inline_only(reply_markup(p))
    if plain == message.text and (entities or None) == message.entities and (
            markup == message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    _record_edit(chat, message)
    message.text, message.entities, message.source, message.parse_mode = (
        plain, entities or None, text, mode)
    message.reply_markup = markup
    return message.to_telegram(sb.world)


async def edit_message_caption(sb: Sandbox, p: Params) -> Any:
    chat, message = _editable(sb, p)
    if not (message.photo or message.document):
        raise bad_request("there is no caption in the message to edit")
    caption = p.str("caption") or ""
    plain, entities, mode = formatted(caption, p, entities_key="caption_entities",
                                      limit=CAPTION_LIMIT, kind="caption")
    markup = _inline_only(reply_markup(p))
    if plain == (message.caption or "") and markup == message.reply_markup:
        raise bad_request(NOT_MODIFIED)
    _record_edit(chat, message)
    message.caption, message.caption_entities, message.source, message.parse_mode = (
        plain or None, entities or None, caption, mode)
    message.reply_markup = markup
    return message.to_telegram(sb.world)


async def edit_message_reply_markup(sb: Sandbox, p: Params) -> Any:
    chat, message = _editable(sb, p)
    markup = _inline_only(reply_markup(p))
    if markup == message.reply_markup or (not markup and not message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    _record_edit(chat, message)
    message.reply_markup = markup
    return message.to_telegram(sb.world)


async def delete_message(sb: Sandbox, p: Params) -> Any:
    chat = sb.world.chats.get(p.chat_id())
    if chat is None:
        raise bad_request("chat not found")
    message = chat.messages.get(p.int("message_id", required=True) or 0)
    if message is None or message.deleted:
        raise bad_request("message to delete not found")
    if chat.type != PRIVATE and not message.from_bot:
        raise bad_request("message can't be deleted")
    message.deleted = True
    chat.touch()
    return True


async def answer_callback_query(sb: Sandbox, p: Params) -> Any:
    query = sb.callbacks.get(p.str("callback_query_id", required=True) or "")
    if query is None or query.answered:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    query.answered = True
    query.answer = {"text": p.str("text"), "show_alert": p.bool("show_alert"),
                    "url": p.str("url"), "date": time.time()}
    chat = sb.world.chats.get(query.chat_id)
    if chat is not None:
        chat.touch()
    return True


async def send_chat_action(sb: Sandbox, p: Params) -> Any:
    chat = sb.target_chat(p.chat_id())
    action = p.str("action", required=True)
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.action = action
    chat.action_until = time.time() + 5
    chat.touch()
    return True


def _commands_key(p: Params) -> str:
    scope = p.json("scope")
    kind = scope.get("type", "default") if isinstance(scope, dict) else "default"
    return f"{kind}:{p.str('language_code') or ''}"


async def set_my_commands(sb: Sandbox, p: Params) -> Any:
    commands = p.json("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("commands must be an array of at most 100 BotCommand")
    for item in commands:
        if not isinstance(item, dict) or not _BOT_COMMAND.match(str(item.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(item.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    sb.world.commands[_commands_key(p)] = [
        {"command": c["command"], "description": c["description"]} for c in commands]
    return True


async def get_my_commands(sb: Sandbox, p: Params) -> Any:
    return sb.world.commands.get(_commands_key(p), [])


async def delete_my_commands(sb: Sandbox, p: Params) -> Any:
    sb.world.commands.pop(_commands_key(p), None)
    return True


async def get_chat(sb: Sandbox, p: Params) -> Any:
    chat = sb.world.chats.get(p.chat_id())
    if chat is None:
        raise bad_request("chat not found")
    info = chat.tg_chat(sb.world)
    info.update({"accent_color_id": abs(chat.id) % 7, "max_reaction_count": 11,
                 "accepted_gift_types": {"unlimited_gifts": True, "limited_gifts": True,
                                         "unique_gifts": True, "premium_subscription": True,
                                         "gifts_from_channels": True}})
    return info


async def get_me(sb: Sandbox, p: Params) -> Any:
    return {**sb.world.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False}


async def accept(sb: Sandbox, p: Params) -> Any:
    return True


METHODS: dict[str, Method] = {
    "getme": get_me,
    "getupdates": get_updates,
    "setwebhook": set_webhook,
    "deletewebhook": delete_webhook,
    "getwebhookinfo": webhook_info,
    "sendmessage": send_message,
    "sendphoto": send_photo,
    "senddocument": send_document,
    "copymessage": copy_message,
    "forwardmessage": forward_message,
    "editmessagetext": edit_message_text,
    "editmessagecaption": edit_message_caption,
    "editmessagereplymarkup": edit_message_reply_markup,
    "deletemessage": delete_message,
    "answercallbackquery": answer_callback_query,
    "sendchataction": send_chat_action,
    "setmycommands": set_my_commands,
    "getmycommands": get_my_commands,
    "deletemycommands": delete_my_commands,
    "getchat": get_chat,
    "setmydescription": accept,
    "setmyshortdescription": accept,
    "setchatmenubutton": accept,
    "logout": accept,
    "close": accept,
}
