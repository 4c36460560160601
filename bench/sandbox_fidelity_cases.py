"""What ``bench/sandbox_fidelity.py`` expects: valid calls of each method, the official server's
descriptions (read in tdlib/telegram-bot-api ``Client.cpp`` and tdlib's ``MessageEntity.cpp`` /
``LinkManager.cpp``), and Telegram's behaviour."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from relove.sandbox.core import DEFAULT_TOKEN, Sandbox

Params = dict[str, Any]
Call = Callable[..., Awaitable[dict[str, Any]]]
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
RESERVED = "is reserved and must be escaped with the preceding '\\'"
#: implemented methods the checks do not call
NOT_CALLED: frozenset[str] = frozenset()
_unique = itertools.count(1)


@dataclass
class Context:
    """The world the checks act in: users, a group, files, messages."""

    sb: Sandbox
    api: Call
    user: int
    stranger: int
    other: int
    group: int
    photo_id: str
    document_id: str
    video_id: str
    message_id: int

    @classmethod
    async def create(cls, sb: Sandbox, api: Call) -> Context:
        world = sb.world
        user = world.add_user(first_name="Аня", username="anya_k", started=True).id
        other = world.add_user(first_name="Петя", started=True).id
        stranger = world.add_user(first_name="Незнакомец").id
        group = world.add_group("Клуб", [user, other]).id
        assert sb.url
        files = {}
        async with aiohttp.ClientSession() as http:
            for method, field, name in (("sendPhoto", "photo", "p.png"),
                                        ("sendDocument", "document", "d.pdf"),
                                        ("sendVideo", "video", "v.mp4")):
                form = aiohttp.FormData()
                form.add_field("chat_id", str(user))
                form.add_field(field, b"\x89PNG data", filename=name)
                async with http.post(f"{sb.url}/bot{DEFAULT_TOKEN}/{method}", data=form) as r:
                    result = (await r.json()).get("result") or {}
                sent = result.get(field)
                sent = (sent or [{}])[-1] if field == "photo" else (sent or {})
                files[field] = sent.get("file_id", "")
        message = (await api("sendMessage", chat_id=user, text="Первое"))["result"]["message_id"]
        return cls(sb, api, user, stranger, other, group, files["photo"], files["document"],
                   files["video"], message)

    async def fresh(self, **extra: Any) -> int:
        text = f"Сообщение {next(_unique)}"
        body = await self.api("sendMessage", chat_id=self.user, text=text, **extra)
        return int(body["result"]["message_id"])

    async def fresh_photo(self) -> int:
        body = await self.api("sendPhoto", chat_id=self.user, photo=self.photo_id, caption="x")
        return int(body["result"]["message_id"])

    async def fresh_callback(self) -> str:
        markup = {"inline_keyboard": [[{"text": "Да", "callback_data": "yes"}]]}
        mid = await self.fresh(reply_markup=markup)
        return self.sb.user_press_button(self.user, mid, data="yes").id

    def fresh_inline(self) -> str:
        return self.sb.user_inline_query(self.user, "йога").id


def _markup(label: str) -> str:
    return json.dumps({"inline_keyboard": [[{"text": label, "callback_data": label}]]})


async def base_params(ctx: Context, method: str) -> Params:
    """A valid call of ``method`` (fresh messages and queries where a call uses them up)."""
    u = ctx.user
    n = next(_unique)
    simple: dict[str, Params] = {
        "getMe": {}, "getUpdates": {"timeout": 0}, "getWebhookInfo": {}, "deleteWebhook": {},
        "setWebhook": {"url": "http://127.0.0.1:9/hook"},
        "sendMessage": {"chat_id": u, "text": "Привет"},
        "sendPhoto": {"chat_id": u, "photo": ctx.photo_id},
        "sendDocument": {"chat_id": u, "document": ctx.document_id},
        "sendVideo": {"chat_id": u, "video": ctx.video_id},
        "sendMediaGroup": {"chat_id": u, "media": json.dumps(
            [{"type": "photo", "media": ctx.photo_id}, {"type": "video", "media": ctx.video_id}])},
        "getFile": {"file_id": ctx.photo_id},
        "copyMessage": {"chat_id": u, "from_chat_id": u, "message_id": ctx.message_id},
        "forwardMessage": {"chat_id": u, "from_chat_id": u, "message_id": ctx.message_id},
        "sendChatAction": {"chat_id": u, "action": "typing"},
        "setMyCommands": {"commands": json.dumps([{"command": "start",
                                                   "description": "Начать"}])},
        "getMyCommands": {}, "deleteMyCommands": {},
        "getChat": {"chat_id": u}, "getChatMember": {"chat_id": ctx.group, "user_id": u},
        "unpinAllChatMessages": {"chat_id": u},
        "setMyDescription": {"description": "Бот"}, "setMyShortDescription": {},
        "setChatMenuButton": {}, "logOut": {}, "close": {},
    }
    if method in simple:
        return simple[method]
    if method == "editMessageText":
        return {"chat_id": u, "message_id": await ctx.fresh(), "text": f"Изменено {n}"}
    if method == "editMessageCaption":
        return {"chat_id": u, "message_id": await ctx.fresh_photo(), "caption": f"Подпись {n}"}
    if method == "editMessageReplyMarkup":
        mid = await ctx.fresh(reply_markup=_markup("a"))
        return {"chat_id": u, "message_id": mid, "reply_markup": _markup(f"b{n}")}
    if method == "deleteMessage":
        return {"chat_id": u, "message_id": await ctx.fresh()}
    if method == "pinChatMessage":
        return {"chat_id": u, "message_id": await ctx.fresh()}
    if method == "unpinChatMessage":  # the chat's last pinned message
        await ctx.api("pinChatMessage", chat_id=u, message_id=await ctx.fresh())
        return {"chat_id": u}
    if method == "answerCallbackQuery":
        return {"callback_query_id": await ctx.fresh_callback(), "text": "Принято"}
    if method == "answerInlineQuery":
        return {"inline_query_id": ctx.fresh_inline(), "results": json.dumps([{
            "type": "article", "id": "1", "title": "Поток",
            "input_message_content": {"message_text": "Поток"}}])}
    raise KeyError(f"no valid call of {method} in the checks")


BAD = "Bad Request: "
#: (method, missing required parameter) -> the official answer ("ok" for a success)
REQUIRED: dict[tuple[str, str], str] = {
    ("sendMessage", "chat_id"): BAD + "chat_id is empty",
    ("sendMessage", "text"): BAD + "message text is empty",
    ("sendPhoto", "chat_id"): BAD + "chat_id is empty",
    ("sendPhoto", "photo"): BAD + "there is no photo in the request",
    ("sendDocument", "chat_id"): BAD + "chat_id is empty",
    ("sendDocument", "document"): BAD + "there is no document in the request",
    ("sendVideo", "chat_id"): BAD + "chat_id is empty",
    ("sendVideo", "video"): BAD + "there is no video in the request",
    ("sendMediaGroup", "chat_id"): BAD + "chat_id is empty",
    ("sendMediaGroup", "media"): BAD + 'parameter "media" is required',
    ("getFile", "file_id"): BAD + "file_id not specified",
    ("copyMessage", "chat_id"): BAD + "chat_id is empty",
    ("copyMessage", "from_chat_id"): BAD + 'parameter "from_chat_id" is required',
    ("copyMessage", "message_id"): BAD + "message to copy not found",
    ("forwardMessage", "chat_id"): BAD + "chat_id is empty",
    ("forwardMessage", "from_chat_id"): BAD + 'parameter "from_chat_id" is required',
    ("forwardMessage", "message_id"): BAD + "message to forward not found",
    ("deleteMessage", "chat_id"): BAD + "chat identifier is not specified",
    ("deleteMessage", "message_id"): BAD + "message identifier is not specified",
    ("answerCallbackQuery", "callback_query_id"): TOO_OLD,
    ("answerInlineQuery", "inline_query_id"): TOO_OLD,
    ("answerInlineQuery", "results"): "ok",
    ("sendChatAction", "chat_id"): BAD + "chat_id is empty",
    ("sendChatAction", "action"): BAD + "wrong parameter action in request",
    ("setMyCommands", "commands"): "ok",
    ("getChat", "chat_id"): BAD + "chat_id is empty",
    ("getChatMember", "chat_id"): BAD + "chat_id is empty",
    ("getChatMember", "user_id"): BAD + "invalid user_id specified",
    ("pinChatMessage", "chat_id"): BAD + "chat_id is empty",
    ("pinChatMessage", "message_id"): BAD + "message to pin not found",
    ("unpinAllChatMessages", "chat_id"): BAD + "chat_id is empty",
    ("unpinChatMessage", "chat_id"): BAD + "chat_id is empty",
    ("setWebhook", "url"): "ok",
}


def _with(method: str, **override: Any) -> Callable[[Context], Awaitable[Params]]:
    async def make(ctx: Context) -> Params:
        params = await base_params(ctx, method)
        params.update({k: (v(ctx) if callable(v) else v) for k, v in override.items()})
        return {k: v for k, v in params.items() if v is not None}

    return make


def _message_to(**fields: Any) -> Callable[[Context], Awaitable[Params]]:
    return _with("sendMessage", **fields)


WORDING: list[tuple[str, Callable[[Context], Awaitable[Params]], str]] = [
    ("sendMessage", _message_to(chat_id="abc"), BAD + "chat not found"),
    ("sendMessage", _message_to(chat_id=777), BAD + "chat not found"),
    ("sendMessage", _message_to(chat_id=lambda c: c.stranger),
     "Forbidden: bot can't initiate conversation with a user"),
    ("sendMessage", _message_to(text="я" * 4097), BAD + "message is too long"),
    ("sendMessage", _message_to(text=" \n \r\n"), BAD + "text must be non-empty"),
    ("sendMessage", _message_to(text="x" * 40000), BAD + "text is too long"),
    ("sendMessage", _message_to(parse_mode="HTML5"), BAD + "unsupported parse_mode"),
    ("sendMessage", _message_to(text="<b>x", parse_mode="HTML"),
     BAD + 'can\'t parse entities: Can\'t find end tag corresponding to start tag "b"'),
    ("sendMessage", _message_to(text="Hello.", parse_mode="MarkdownV2"),
     BAD + f"can't parse entities: Character '.' {RESERVED}"),
    ("sendMessage", _message_to(text="2+2=4", parse_mode="markdownv2"),
     BAD + f"can't parse entities: Character '+' {RESERVED}"),
    ("sendMessage", _message_to(text="Цена *100", parse_mode="MarkdownV2"),
     BAD + "can't parse entities: Can't find end of Bold entity at byte offset 9"),
    ("sendMessage", _message_to(text="snake_case", parse_mode="Markdown"),
     BAD + "can't parse entities: Can't find end of the entity starting at byte offset 5"),
    ("sendMessage", _message_to(reply_to_message_id=99999),
     BAD + "message to be replied not found"),
    ("sendMessage", _message_to(reply_parameters="{"),
     BAD + "can't parse reply parameters JSON object"),
    ("sendMessage", _message_to(reply_parameters="[]"),
     BAD + "object expected as reply parameters"),
    ("sendMessage", _message_to(reply_markup="{"),
     BAD + "can't parse reply keyboard markup JSON object"),
    ("sendMessage", _message_to(reply_markup='{"keyboard": [[7]]}'),
     BAD + "can't parse keyboard button: KeyboardButton must be a String or an Object"),
    ("sendMessage", _message_to(reply_markup='{"inline_keyboard": [[{"text": "x"}]]}'),
     BAD + "can't parse inline keyboard button: Text buttons are unallowed in the inline "
           "keyboard"),
    ("sendMessage", _message_to(
        reply_markup='{"inline_keyboard": [[{"text": "x", "callback_data": "' + "x" * 65 + '"}]]}'),
     BAD + "BUTTON_DATA_INVALID"),
    ("sendMessage", _message_to(
        reply_markup='{"inline_keyboard": [[{"text": "x", "url": "relove"}]]}'),
     BAD + "inline keyboard button URL 'relove' is invalid: Wrong HTTP URL"),
    ("sendMessage", _message_to(entities='[{"type": "bold", "offset": 0}]'),
     BAD + 'can\'t parse MessageEntity: Can\'t find field "length"'),
    ("sendMessage", _message_to(entities='[{"type": "text_link", "offset": 0, "length": 2, '
                                         '"url": "nowhere"}]'),
     BAD + "entity URL 'nowhere' is invalid: Wrong HTTP URL"),
    ("sendPhoto", _with("sendPhoto", photo="no-such-file"),
     BAD + "wrong file identifier/HTTP URL specified"),
    ("sendPhoto", _with("sendPhoto", photo="attach://missing"),
     BAD + "there is no photo in the request"),
    ("sendPhoto", _with("sendPhoto", caption="<i>x", parse_mode="HTML"),
     BAD + 'can\'t parse entities: Can\'t find end tag corresponding to start tag "i"'),
    ("getFile", _with("getFile", file_id="nope"), BAD + "invalid file_id"),
    ("editMessageText", _with("editMessageText", chat_id=None, message_id=None),
     BAD + "message identifier is not specified"),
    ("editMessageText", _with("editMessageText", message_id=None),
     BAD + "message to edit not found"),
    ("editMessageText", _with("editMessageText", message_id=99999),
     BAD + "message to edit not found"),
    ("editMessageText", _with("editMessageText", text="Первое",
                              message_id=lambda c: c.message_id),
     BAD + "message is not modified: specified new message content and reply markup are "
           "exactly the same as a current content and reply markup of the message"),
    ("editMessageCaption", _with("editMessageCaption", chat_id=None, message_id=None),
     BAD + "message identifier is not specified"),
    ("editMessageReplyMarkup", _with("editMessageReplyMarkup", chat_id=None, message_id=None),
     BAD + "message identifier is not specified"),
    ("deleteMessage", _with("deleteMessage", message_id=99999),
     BAD + "message to delete not found"),
    ("forwardMessage", _with("forwardMessage", from_chat_id="abc"), BAD + "chat not found"),
    ("copyMessage", _with("copyMessage", message_id=99999), BAD + "message to copy not found"),
    ("sendChatAction", _with("sendChatAction", action="dance"),
     BAD + "wrong parameter action in request"),
    ("setMyCommands", _with("setMyCommands", commands="{"),
     BAD + "can't parse commands JSON object"),
    ("setMyCommands", _with("setMyCommands", commands='{"command": "x"}'),
     BAD + "expected an Array of BotCommand"),
    ("setMyCommands", _with("setMyCommands", commands='[{"command": "x"}]'),
     BAD + 'can\'t parse BotCommand: Can\'t find field "description"'),
    ("setMyCommands", _with("setMyCommands",
                            commands='[{"command": "Bad Cmd", "description": "d"}]'),
     BAD + "BOT_COMMAND_INVALID"),
    ("answerInlineQuery", _with("answerInlineQuery", results="{}"),
     BAD + "expected an Array of inline query results"),
    ("answerInlineQuery", _with("answerInlineQuery", results='[{"id": "1"}]'),
     BAD + 'can\'t parse inline query result: Can\'t find field "type"'),
    ("answerInlineQuery", _with("answerInlineQuery", results=json.dumps(
        [{"type": "article", "id": str(i), "title": "t",
          "input_message_content": {"message_text": "t"}} for i in range(51)])),
     BAD + "too many inline query results specified"),
    ("getChatMember", _with("getChatMember", user_id=424242), BAD + "user not found"),
    ("sendMediaGroup", _with("sendMediaGroup", media='[{"type": "photo"}]'),
     BAD + "can't parse InputMedia: media not found"),
    ("setWebhook", _with("setWebhook", url="ftp://example.com"),
     BAD + "bad webhook: An HTTPS URL must be provided for webhook"),
]


# --- behaviour ----------------------------------------------------------------------------------
Behaviour = Callable[[Call, Context], Awaitable[str | None]]


def _expect(got: Any, expected: Any) -> str | None:
    return None if got == expected else f"expected {expected!r}, got {got!r}"


async def _trimmed(api: Call, ctx: Context) -> str | None:
    body = await api("sendMessage", chat_id=ctx.user, text="\n  Привет!\r\n  ")
    return _expect(body["result"]["text"], "Привет!")


async def _auto_entities(api: Call, ctx: Context) -> str | None:
    text = "Пишите @relove_team, #йога, relove.ru/flow, help@relove.ru и /start"
    body = await api("sendMessage", chat_id=ctx.user, text=text)
    kinds = [e["type"] for e in body["result"].get("entities", [])]
    return _expect(kinds, ["mention", "hashtag", "url", "email", "bot_command"])


async def _link_normalised(api: Call, ctx: Context) -> str | None:
    body = await api("sendMessage", chat_id=ctx.user, parse_mode="HTML",
                     text='<a href="Relove.RU">сайт</a>')
    return _expect(body["result"]["entities"][0]["url"], "http://relove.ru/")


async def _text_mention(api: Call, ctx: Context) -> str | None:
    body = await api("sendMessage", chat_id=ctx.user, parse_mode="MarkdownV2",
                     text=f"[Аня](tg://user?id={ctx.user})")
    entity = body["result"]["entities"][0]
    return _expect((entity["type"], entity["user"]["id"]), ("text_mention", ctx.user))


async def _markdown_v2(api: Call, ctx: Context) -> str | None:
    body = await api("sendMessage", chat_id=ctx.user, parse_mode="MarkdownV2",
                     text="*жирный _курсив_* ||спойлер|| 1\\.5")
    result = body["result"]
    return _expect((result["text"], [e["type"] for e in result["entities"]]),
                   ("жирный курсив спойлер 1.5", ["bold", "italic", "spoiler"]))


async def _protected(api: Call, ctx: Context) -> str | None:
    body = await api("sendMessage", chat_id=ctx.user, text="секрет", protect_content=True)
    if body["result"].get("has_protected_content") is not True:
        return "has_protected_content missing"
    fwd = await api("forwardMessage", chat_id=ctx.user, from_chat_id=ctx.user,
                    message_id=body["result"]["message_id"])
    return _expect(fwd.get("description"),
                   BAD + "message has protected content and can't be forwarded")


async def _privacy(api: Call, ctx: Context) -> str | None:
    before = len(ctx.sb.updates.pending)
    ctx.sb.user_send(ctx.user, "просто разговор", chat_id=ctx.group)
    ctx.sb.user_send(ctx.user, "/help", chat_id=ctx.group)
    heard = [u["message"]["text"] for u in list(ctx.sb.updates.pending)[before:]]
    return _expect(heard, ["/help"])


async def _get_me(api: Call, ctx: Context) -> str | None:
    me = (await api("getMe"))["result"]
    return _expect((me["is_bot"], me["can_read_all_group_messages"]), (True, False))


async def _album(api: Call, ctx: Context) -> str | None:
    body = await api("sendMediaGroup", **await base_params(ctx, "sendMediaGroup"))
    ids = {m.get("media_group_id") for m in body["result"]}
    return None if len(ids) == 1 and None not in ids else f"media_group_id: {ids}"


async def _conflict(api: Call, ctx: Context) -> str | None:
    await api("setWebhook", url="http://127.0.0.1:9/hook")
    body = await api("getUpdates")
    await api("deleteWebhook")
    return _expect((body.get("error_code"), body.get("description")), (
        409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
             "to delete the webhook first"))


BEHAVIOUR: list[tuple[str, Behaviour]] = [
    ("bot text trimmed, \\r removed", _trimmed),
    ("auto-detected entities", _auto_entities),
    ("text_link URL normalised", _link_normalised),
    ("tg://user?id= becomes text_mention", _text_mention),
    ("MarkdownV2 parsed", _markdown_v2),
    ("protect_content recorded and honoured", _protected),
    ("group privacy mode", _privacy),
    ("getMe", _get_me),
    ("album shares media_group_id", _album),
    ("getUpdates while a webhook is set", _conflict),
]
