"""Methods added for fidelity (getFile, getChatMember, sendVideo, sendMediaGroup, pins,
answerInlineQuery), unimplemented-but-known methods, protect_content and group privacy mode —
driven by aiogram over real HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound
from aiogram.methods import GetMe
from aiogram.types import (
    BufferedInputFile,
    InlineQueryResultArticle,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    InputTextMessageContent,
)

from relove.sandbox.client import SandboxClient, SandboxError
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox
from relove.sandbox.methods import KNOWN_METHODS
from tests.sandbox.conftest import RawCall


async def _started(client: SandboxClient, name: str = "Аня") -> int:
    return int((await client.create_user(name, started=True))["id"])


class _Method(GetMe):
    __api_method__ = "sendPoll"


class _Unknown(GetMe):
    __api_method__ = "getSomethingElse"


async def test_known_but_unimplemented_methods_say_so(plain_bot: Bot, raw: RawCall) -> None:
    assert len(KNOWN_METHODS) >= 150 and "sendpoll" in KNOWN_METHODS
    with pytest.raises(TelegramBadRequest) as refused:
        await plain_bot(_Method())
    assert refused.value.message == ("Bad Request: method sendPoll is not supported by the "
                                     "sandbox (see docs/sandbox.md)")
    assert (await raw("SENDPOLL"))["error_code"] == 400  # names are case-insensitive
    with pytest.raises(TelegramNotFound):
        await plain_bot(_Unknown())  # not a Bot API method at all: 404 as Telegram


async def test_files_get_file_and_download(plain_bot: Bot, sandbox: Sandbox,
                                           sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    sent = await plain_bot.send_video(uid, BufferedInputFile(b"\x00\x00\x00\x18ftypmp42", "c.mp4"),
                                      width=1280, height=720, duration=12, caption="Урок 1")
    assert sent.video and (sent.video.width, sent.video.height, sent.video.duration) == (
        1280, 720, 12)
    assert sent.caption == "Урок 1"
    info = await plain_bot.get_file(sent.video.file_id)
    assert info.file_size == 12 and info.file_path and info.file_path.endswith(".mp4")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.url}/file/bot{DEFAULT_TOKEN}/{info.file_path}") as r:
            assert r.status == 200 and await r.read() == b"\x00\x00\x00\x18ftypmp42"
            assert r.headers["Content-Disposition"] == "attachment"
        async with http.get(f"{sandbox.url}/file/bot{DEFAULT_TOKEN}/videos/nope.mp4") as r:
            assert r.status == 404
    with pytest.raises(TelegramBadRequest, match="says - Bad Request: invalid file_id$"):
        await plain_bot.get_file("no-such-file")
    again = await plain_bot.send_video(uid, sent.video.file_id)
    assert again.video and again.video.file_id == sent.video.file_id


async def test_media_group(plain_bot: Bot, sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    album = await plain_bot.send_media_group(uid, [
        InputMediaPhoto(media=BufferedInputFile(b"\x89PNG1", "a.png"), caption="<b>Раз</b>",
                        parse_mode="HTML"),
        InputMediaVideo(media=BufferedInputFile(b"vid", "b.mp4")),
    ], protect_content=True)
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert album[0].media_group_id and album[0].photo and album[1].video
    assert album[0].caption == "Раз" and album[0].caption_entities
    assert all(m.has_protected_content for m in album)
    with pytest.raises(TelegramBadRequest) as mixed:
        await plain_bot.send_media_group(uid, [
            InputMediaPhoto(media=album[0].photo[-1].file_id),
            InputMediaDocument(media=BufferedInputFile(b"doc", "d.pdf"))])
    assert mixed.value.message == ("Bad Request: document can't be mixed with other media "
                                   "types")
    view = await sandbox_client.messages(uid)
    assert [m["media_group_id"] is not None for m in view] == [True, True]


@pytest.mark.parametrize("media,error", [
    ("", 'parameter "media" is required'),
    ("{", "can't parse media JSON object"),
    ('{"type": "photo"}', "expected an Array of InputMedia"),
    ('["x"]', "can't parse InputMedia: expected an Object"),
    ('[{"media": "http://x.org/a.png"}]', 'can\'t parse InputMedia: Can\'t find field "type"'),
    ('[{"type": "photo"}]', "can't parse InputMedia: media not found"),
    ('[{"type": "photo", "media": "attach://missing"}]', "can't parse InputMedia: media not found"),
    ('[{"type": "animation", "media": "http://x.org/a.gif"}]',
     'can\'t parse InputMedia: type "animation" can\'t be used in sendMediaGroup'),
    ('[{"type": "sticker", "media": "http://x.org/a.webp"}]',
     'can\'t parse InputMedia: type "sticker" is unsupported'),
    ('[{"type": "photo", "media": "http://x.org/a.png", "caption": "*x", '
     '"parse_mode": "MarkdownV2"}]',
     "can't parse InputMedia: Can't parse entities: Can't find end of Bold entity at byte "
     "offset 0"),
    ("[" + ",".join(['{"type": "photo", "media": "http://x.org/a.png"}'] * 11) + "]",
     "too many messages to send as an album"),
    ("[]", "there are no messages to send"),
])
async def test_media_group_refusals(raw: RawCall, sandbox: Sandbox, media: str,
                                    error: str) -> None:
    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    answer = await raw("sendMediaGroup", chat_id=uid, media=media)
    assert answer == {"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}


async def test_chat_members_and_pins(plain_bot: Bot, sandbox: Sandbox,
                                     sandbox_client: SandboxClient) -> None:
    ids = [await _started(sandbox_client, n) for n in ("Оля", "Петя", "Вне")]
    group = await sandbox_client.create_group("Клуб", ids[:2])
    me = await plain_bot.get_me()
    statuses = [(await plain_bot.get_chat_member(group["id"], uid)).status
                for uid in (*ids, me.id)]
    assert statuses == ["creator", "member", "left", "member"]
    assert (await plain_bot.get_chat_member(ids[0], ids[0])).status == "member"
    with pytest.raises(TelegramBadRequest, match="says - Bad Request: user not found$"):
        await plain_bot.get_chat_member(group["id"], 999)
    with pytest.raises(TelegramBadRequest, match="says - Bad Request: invalid user_id specified$"):
        await plain_bot.get_chat_member(group["id"], 0)
    # pins: in a private chat the bot may; in a group it needs to be an administrator
    note = await plain_bot.send_message(ids[0], "Правила клуба")
    assert await plain_bot.pin_chat_message(ids[0], note.message_id)
    chat = await plain_bot.get_chat(ids[0])
    assert chat.pinned_message and chat.pinned_message.message_id == note.message_id
    assert (await sandbox_client.messages(ids[0]))[-1]["pinned"] is True
    with pytest.raises(TelegramBadRequest, match="says - Bad Request: message to pin not found$"):
        await plain_bot.pin_chat_message(ids[0], 999)
    assert await plain_bot.unpin_chat_message(ids[0])
    assert (await plain_bot.get_chat(ids[0])).pinned_message is None
    posted = await plain_bot.send_message(group["id"], "В группе")
    with pytest.raises(TelegramBadRequest, match="not enough rights to manage pinned messages"):
        await plain_bot.pin_chat_message(group["id"], posted.message_id)
    admin_group = await sandbox_client.create_group("Админы", ids[:1], bot_admin=True)
    there = await plain_bot.send_message(admin_group["id"], "Закреп")
    assert await plain_bot.pin_chat_message(admin_group["id"], there.message_id)
    assert (await plain_bot.get_chat_member(admin_group["id"], me.id)).status == "administrator"


async def test_inline_mode(plain_bot: Bot, sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    assert (await plain_bot.get_me()).supports_inline_queries is True
    asking = asyncio.create_task(sandbox_client.inline_query(uid, "йога", wait=30))
    update = None
    for _ in range(100):
        updates = await plain_bot.get_updates(timeout=1, allowed_updates=[
            "message", "inline_query", "chosen_inline_result"])
        update = next((u for u in updates if u.inline_query), None)
        if update:
            break
    assert update and update.inline_query and update.inline_query.query == "йога"
    results = [InlineQueryResultArticle(
        id="flow", title="Поток", input_message_content=InputTextMessageContent(
            message_text="Новый поток: relove.ru/flow"))]
    with pytest.raises(TelegramBadRequest) as bad:
        await plain_bot.answer_inline_query(update.inline_query.id, [*results, *results])
    assert bad.value.message == "Bad Request: RESULT_ID_DUPLICATE"
    assert await plain_bot.answer_inline_query(update.inline_query.id, results, cache_time=0)
    answered = await asking
    assert answered["answered"] and answered["answer"]["results"][0]["id"] == "flow"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await plain_bot.answer_inline_query(update.inline_query.id, results)
    chosen = await sandbox_client.choose_inline_result(uid, answered["inline_query_id"], "flow")
    assert chosen["via_bot"] is True and chosen["text"] == "Новый поток: relove.ru/flow"
    updates = await plain_bot.get_updates(offset=update.update_id + 1, timeout=0)
    kinds = [u.event_type for u in updates]
    assert kinds == ["message", "chosen_inline_result"]
    assert updates[0].message and updates[0].message.via_bot
    await sandbox_client.set_bot(inline_mode=False)
    with pytest.raises(SandboxError, match="no inline mode"):
        await sandbox_client.inline_query(uid, "x")
    assert (await plain_bot.get_me()).supports_inline_queries is False


async def test_protected_content_cannot_be_forwarded(plain_bot: Bot,
                                                     sandbox_client: SandboxClient) -> None:
    uid = await _started(sandbox_client)
    secret = await plain_bot.send_message(uid, "Только для участников", protect_content=True)
    assert secret.has_protected_content is True
    for call in (plain_bot.forward_message, plain_bot.copy_message):
        with pytest.raises(TelegramBadRequest) as refused:
            await call(uid, uid, secret.message_id)
        assert refused.value.message == ("Bad Request: message has protected content and "
                                         "can't be forwarded")
    view = (await sandbox_client.messages(uid))[-1]
    assert view["protected"] is True
    open_one = await plain_bot.send_message(uid, "Можно делиться")
    assert not open_one.has_protected_content
    assert (await plain_bot.forward_message(uid, uid, open_one.message_id)).forward_origin


async def test_group_privacy_mode(plain_bot: Bot, sandbox: Sandbox,
                                  sandbox_client: SandboxClient) -> None:
    """With privacy mode on (Telegram's default) a bot in a group hears commands, replies to
    its messages and @mentions only; off, or as an administrator, it hears everything."""
    me = await plain_bot.get_me()
    assert me.can_read_all_group_messages is False
    ids = [await _started(sandbox_client, n) for n in ("Оля", "Петя")]
    group = await sandbox_client.create_group("Клуб", ids)
    bot_post = await plain_bot.send_message(group["id"], "Всем привет")
    said = [
        ("Доброе утро", None),                       # plain chat: not for the bot
        ("/help", None),                              # a command
        (f"/help@{me.username}", None),               # a command to this bot
        ("/help@other_bot", None),                    # a command to another bot
        (f"спасибо @{me.username}!", None),           # a mention
        ("ответ боту", bot_post.message_id),          # a reply to the bot
    ]
    before = len(sandbox.updates.pending)
    for text, reply_to in said:
        await sandbox_client.send(ids[0], text, chat_id=group["id"], reply_to=reply_to)
    heard = [u["message"]["text"] for u in list(sandbox.updates.pending)[before:]]
    assert heard == ["/help", f"/help@{me.username}", f"спасибо @{me.username}!",
                     "ответ боту"]
    assert len(sandbox.world.chats[group["id"]].messages) == 7  # everyone else sees all
    await sandbox_client.set_bot(can_read_all_group_messages=True)
    assert (await plain_bot.get_me()).can_read_all_group_messages is True
    await sandbox_client.send(ids[1], "Доброе утро", chat_id=group["id"])
    assert sandbox.updates.pending[-1]["message"]["text"] == "Доброе утро"
    await sandbox_client.set_bot(can_read_all_group_messages=False)
    admins = await sandbox_client.create_group("Админы", ids, bot_admin=True)
    await sandbox_client.send(ids[1], "Просто так", chat_id=admins["id"])
    assert sandbox.updates.pending[-1]["message"]["text"] == "Просто так"


async def test_reply_keyboard_and_inline_buttons_official_wording(
        raw: RawCall, sandbox: Sandbox) -> None:
    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    cases = [
        ("{", "can't parse reply keyboard markup JSON object"),
        ("[]", "object expected as reply markup"),
        ('{"keyboard": {}}', 'field "keyboard" must be of type Array'),
        ('{"keyboard": [{}]}', 'field "keyboard" must be an Array of Arrays'),
        ('{"keyboard": [[5]]}',
         "can't parse keyboard button: KeyboardButton must be a String or an Object"),
        ('{"inline_keyboard": [{}]}',
         'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'),
        ('{"inline_keyboard": [[{"text": "x"}]]}',
         "can't parse inline keyboard button: Text buttons are unallowed in the inline "
         "keyboard"),
        ('{"inline_keyboard": [[{"callback_data": "x"}]]}',
         'can\'t parse inline keyboard button: Can\'t find field "text"'),
        ('{"inline_keyboard": [[{"text": "x", "url": "relove"}]]}',
         "inline keyboard button URL 'relove' is invalid: Wrong HTTP URL"),
    ]
    for markup, error in cases:
        answer = await raw("sendMessage", chat_id=uid, text="x", reply_markup=markup)
        assert answer["description"] == f"Bad Request: {error}", markup
    # two kinds on one button: the official server takes the first (url), no error
    both = await raw("sendMessage", chat_id=uid, text="x", reply_markup=(
        '{"inline_keyboard": [[{"text": "x", "url": "relove.ru", "callback_data": "y"}]]}'))
    assert both["ok"] is True
    assert both["result"]["reply_markup"]["inline_keyboard"][0][0]["url"] == "relove.ru"
