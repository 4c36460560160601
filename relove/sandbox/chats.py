"""The bot and its chats: getMe, getChat, getChatMember, pinned messages, chat actions and the
command menu."""

from __future__ import annotations

import re
import time
from typing import Any

from relove.sandbox.core import Sandbox, bad_request
from relove.sandbox.params import Params, lenient_int
from relove.sandbox.state import GROUP, PRIVATE, Chat

CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note", "cancel",
})
_BOT_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
ADMIN_RIGHTS = {
    "can_be_edited": False, "is_anonymous": False, "can_manage_chat": True,
    "can_delete_messages": True, "can_manage_video_chats": True,
    "can_restrict_members": True, "can_promote_members": False, "can_change_info": True,
    "can_invite_users": True, "can_post_stories": False, "can_edit_stories": False,
    "can_delete_stories": False, "can_pin_messages": True, "can_send_welcome_messages": False,
}


async def get_me(sb: Sandbox, p: Params) -> Any:
    world = sb.world
    return {**world.bot_user, "can_join_groups": True,
            "can_read_all_group_messages": world.can_read_all_group_messages,
            "supports_inline_queries": world.inline_mode, "can_connect_to_business": False,
            "has_main_web_app": False}


def _chat(sb: Sandbox, p: Params) -> Chat:
    chat = sb.world.chats.get(p.chat_id())
    if chat is None:
        raise bad_request("chat not found")
    return chat


async def get_chat(sb: Sandbox, p: Params) -> Any:
    chat = _chat(sb, p)
    info = chat.tg_chat(sb.world)
    info.update({"accent_color_id": abs(chat.id) % 7, "max_reaction_count": 11,
                 "accepted_gift_types": {"unlimited_gifts": True, "limited_gifts": True,
                                         "unique_gifts": True, "premium_subscription": True,
                                         "gifts_from_channels": True}})
    pinned = [chat.messages[m] for m in chat.pinned if not chat.messages[m].deleted]
    if pinned:
        info["pinned_message"] = pinned[-1].to_telegram(sb.world)
    return info


async def get_chat_member(sb: Sandbox, p: Params) -> Any:
    user_id = max(lenient_int(p.values.get("user_id")), 0)
    if user_id == 0:
        raise bad_request("invalid user_id specified")
    chat = _chat(sb, p)
    world = sb.world
    if user_id == world.bot_id:
        if chat.type == GROUP and chat.bot_admin:
            return {"status": "administrator", "user": world.bot_user, **ADMIN_RIGHTS}
        return {"status": "member", "user": world.bot_user}
    user = world.users.get(user_id)
    if user is None:
        raise bad_request("user not found")
    member = {"user": user.tg_user()}
    if chat.type == PRIVATE:
        if user_id != chat.id:
            raise bad_request("user not found")
        return {"status": "member", **member}
    if user_id not in chat.members:
        return {"status": "left", **member}
    if user_id == chat.creator:
        return {"status": "creator", "is_anonymous": False, **member}
    return {"status": "member", **member}


def _pinnable(sb: Sandbox, p: Params, verb: str) -> tuple[Chat, int]:
    chat = sb.target_chat(p.chat_id())
    message_id = p.message_id()
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        raise bad_request(f"message to {verb} not found")
    if chat.type == GROUP and not chat.bot_admin:
        raise bad_request("not enough rights to manage pinned messages in the chat")
    return chat, message_id


async def pin_chat_message(sb: Sandbox, p: Params) -> Any:
    chat, message_id = _pinnable(sb, p, "pin")
    if message_id in chat.pinned:
        chat.pinned.remove(message_id)
    chat.pinned.append(message_id)
    chat.messages[message_id].pinned = True
    chat.touch()
    return True


async def unpin_chat_message(sb: Sandbox, p: Params) -> Any:
    if p.message_id() == 0:
        chat = sb.target_chat(p.chat_id())
        if not chat.pinned:
            raise bad_request("message to unpin not found")
        message_id = chat.pinned[-1]
    else:
        chat, message_id = _pinnable(sb, p, "unpin")
    if message_id in chat.pinned:
        chat.pinned.remove(message_id)
        chat.messages[message_id].pinned = False
        chat.touch()
    return True


async def unpin_all_chat_messages(sb: Sandbox, p: Params) -> Any:
    chat = sb.target_chat(p.chat_id())
    for message_id in chat.pinned:
        chat.messages[message_id].pinned = False
    chat.pinned.clear()
    chat.touch()
    return True


async def send_chat_action(sb: Sandbox, p: Params) -> Any:
    action = p.raw("action").lower()
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat = sb.target_chat(p.chat_id())
    chat.action = None if action == "cancel" else action
    chat.action_until = time.time() + 5
    chat.touch()
    return True


def _commands_key(p: Params) -> str:
    scope = p.json("scope", "can't parse BotCommandScope JSON object")
    kind = scope.get("type", "default") if isinstance(scope, dict) else "default"
    return f"{kind}:{p.raw('language_code')}"


def _command(item: Any) -> dict[str, str]:
    if not isinstance(item, dict):
        raise ValueError("expected an Object")
    out = {}
    for name in ("command", "description"):
        if name not in item:
            raise ValueError(f'Can\'t find field "{name}"')
        value = item[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f'Field "{name}" must be of type String')
        out[name] = value
    return out


async def set_my_commands(sb: Sandbox, p: Params) -> Any:
    commands: Any = []
    if p.raw("commands"):
        commands = p.json("commands", "can't parse commands JSON object")
        if not isinstance(commands, list):
            raise bad_request("expected an Array of BotCommand")
    parsed = []
    for item in commands:
        try:
            parsed.append(_command(item))
        except ValueError as e:
            raise bad_request(f"can't parse BotCommand: {e}") from None
    key = _commands_key(p)
    if len(parsed) > 100:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    for command in parsed:
        if not _BOT_COMMAND.match(command["command"]):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(command["description"].strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    sb.world.commands[key] = [{"command": c["command"], "description": c["description"].strip()}
                              for c in parsed]
    return True


async def get_my_commands(sb: Sandbox, p: Params) -> Any:
    return sb.world.commands.get(_commands_key(p), [])


async def delete_my_commands(sb: Sandbox, p: Params) -> Any:
    sb.world.commands.pop(_commands_key(p), None)
    return True
