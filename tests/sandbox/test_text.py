"""Text as Telegram stores it: auto-detected entities, trimming and clean-up, link URLs
normalised, ``tg://user?id=`` mentions, explicit entities checked with the official wording."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import MessageEntity

from relove.sandbox.autodetect import find_entities
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import Sandbox
from relove.sandbox.links import LinkError, check_link, link_user_id
from tests.sandbox.conftest import RawCall


def _found(text: str) -> list[tuple[str, str]]:
    units = text.encode("utf-16-le")
    return [(e["type"], units[2 * e["offset"]:2 * (e["offset"] + e["length"])].decode(
        "utf-16-le")) for e in find_entities(text)]


@pytest.mark.parametrize("text,expected", [
    ("hi @anya_k and @ab, @gif", [("mention", "@anya_k"), ("mention", "@gif")]),
    ("mail@example.com", [("email", "mail@example.com")]),
    ("/start@relove_bot now /help", [("bot_command", "/start@relove_bot"),
                                     ("bot_command", "/help")]),
    ("path/to /x", [("bot_command", "/x")]),
    ("see https://example.com/a?b=1. ok", [("url", "https://example.com/a?b=1")]),
    ("example.com, notes.txt, t.me/relove", [("url", "example.com"), ("url", "t.me/relove")]),
    ("(see example.com/a_(b))", [("url", "example.com/a_(b)")]),
    ("end.Com and 10.0.0.1:8080/x", [("url", "10.0.0.1:8080/x")]),
    ("🌿 https://пример.рф/путь", [("url", "https://пример.рф/путь")]),
    ("tg://resolve?domain=relove", [("url", "tg://resolve?domain=relove")]),
    ("#йога #2024 #a_b@chan", [("hashtag", "#йога"), ("hashtag", "#a_b@chan")]),
    ("$USD $usd $1INCH", [("cashtag", "$USD"), ("cashtag", "$1INCH")]),
    ("card 4111 1111 1111 1111, not 4111 1111 1111 1112",
     [("bank_card_number", "4111 1111 1111 1111")]),
    ("nothing to see here", []),
])
def test_auto_detected_entities(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize("link,normalised", [
    ("example.com", "http://example.com/"),
    ("HTTPS://Example.COM:443/A B?x=1", "https://example.com:443/A%20B?x=1"),
    ("http://user:pw@host.org", "http://user:pw@host.org/"),
    ("tg://resolve?domain=x", "tg://resolve?domain=x"),
    ("http://[::1]:8080/", "http://[::1]:8080/"),
])
def test_links_normalised(link: str, normalised: str) -> None:
    assert check_link(link) == normalised


@pytest.mark.parametrize("link,reason", [
    ("localhost", "Wrong HTTP URL"),
    ("ftp://example.com", "Unsupported URL protocol"),
    ("http://exa mple.com", "Disallowed character in URL host"),
    ("http://example.com:99999", "Wrong port number specified in the URL"),
    ("http://%zz.com", "Wrong percent-encoded symbol in URL host"),
    ("https:///path", "URL host is empty"),
    ("tg://user:1?id=5", "Wrong tg URL"),
])
def test_bad_links(link: str, reason: str) -> None:
    with pytest.raises(LinkError) as refused:
        check_link(link)
    assert str(refused.value) == f"URL '{link}' is invalid: {reason}"


def test_user_links() -> None:
    assert link_user_id("tg://user?id=123") == 123
    assert link_user_id("TG://USER?ID=5") == 5  # compared lower-cased, like Telegram
    assert link_user_id("tg:user?foo=1&id=77#x") == 77
    assert link_user_id("tg://user?id=abc") is None
    assert link_user_id("https://t.me/user?id=1") is None


def _entities(message: Any) -> list[tuple[str, int, int, str | None]]:
    return [(e.type, e.offset, e.length, e.url) for e in message.entities or []]


async def test_bot_text_trimmed_cleaned_and_entities_found(plain_bot: Bot, sandbox: Sandbox
                                                           ) -> None:
    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    sent = await plain_bot.send_message(uid, "\n  Запись: https://relove.ru/flow.\r\n #йога  \n\n")
    assert sent.text == "Запись: https://relove.ru/flow.\n #йога"
    assert _entities(sent) == [("url", 8, 22, None), ("hashtag", 33, 5, None)]
    tabs = await plain_bot.send_message(uid, "a\tb\x01c")
    assert tabs.text == "a b c"
    html = await plain_bot.send_message(
        uid, '  <b>Итог</b> <a href="Relove.RU/a b">тут</a> <a href="">example.org</a> '
             '<a href="javascript:alert(1)">x</a> <code>@anya_k</code> @anya_k ',
        parse_mode="HTML")
    assert html.text == "Итог тут example.org x @anya_k @anya_k"
    assert _entities(html) == [("bold", 0, 4, None), ("text_link", 5, 3, "http://relove.ru/a%20b"),
                               ("text_link", 9, 11, "http://example.org/"),
                               ("code", 23, 7, None), ("mention", 31, 7, None)]
    with pytest.raises(TelegramBadRequest) as refused:
        await plain_bot.send_message(uid, " \n \r\n ")
    assert refused.value.message == "Bad Request: text must be non-empty"
    with pytest.raises(TelegramBadRequest) as refused:
        await plain_bot.send_message(uid, "<b> </b>", parse_mode="HTML")
    assert refused.value.message == "Bad Request: text must be non-empty"


async def test_tg_user_links_become_text_mentions(plain_bot: Bot, sandbox: Sandbox) -> None:
    anya = sandbox.world.add_user(first_name="Аня", started=True)
    stranger = sandbox.world.add_user(first_name="Незнакомец")
    sent = await plain_bot.send_message(
        anya.id, f'<a href="tg://user?id={anya.id}">Аня</a> и '
                 f'<a href="tg://user?id={stranger.id}">он</a>', parse_mode="HTML")
    assert sent.text == "Аня и он"
    assert len(sent.entities or []) == 1
    mention = (sent.entities or [])[0]
    assert mention.type == "text_mention" and mention.user and mention.user.id == anya.id
    # a user who never talked to the bot is plain text, as Telegram does
    explicit = await plain_bot.send_message(anya.id, "Аня", entities=[
        MessageEntity(type="text_link", offset=0, length=3, url=f"tg://user?id={anya.id}")])
    assert [(e.type, e.user.id if e.user else None) for e in explicit.entities or []] == [
        ("text_mention", anya.id)]


@pytest.mark.parametrize("entities,error", [
    ('[{"offset": 0, "length": 1}]', 'can\'t parse MessageEntity: Can\'t find field "type"'),
    ('[{"type": "bold", "length": 1}]',
     'can\'t parse MessageEntity: Can\'t find field "offset"'),
    ('[{"type": "shiny", "offset": 0, "length": 1}]',
     "can't parse MessageEntity: Unsupported type specified"),
    ('[{"type": "text_link", "offset": 0, "length": 1}]',
     'can\'t parse MessageEntity: Can\'t find field "url"'),
    ('["bold"]', "can't parse MessageEntity: expected an Object"),
    ('[{"type": "bold", "offset": 5, "length": 1}]',
     "entity begins after the end of the text at UTF-16 offset 5"),
    ('[{"type": "bold", "offset": 0, "length": 9}]',
     "entity beginning at UTF-16 offset 0 ends after the end of the text at UTF-16 offset 9"),
    ('[{"type": "text_link", "offset": 0, "length": 2, "url": "nowhere"}]',
     "entity URL 'nowhere' is invalid: Wrong HTTP URL"),
])
async def test_explicit_entities_official_wording(raw: RawCall, sandbox: Sandbox,
                                                  entities: str, error: str) -> None:
    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    answer = await raw("sendMessage", chat_id=uid, text="abcd", entities=entities)
    assert answer == {"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}


async def test_explicit_auto_entities_are_recomputed(raw: RawCall, sandbox: Sandbox) -> None:
    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    answer = await raw("sendMessage", chat_id=uid, text="see example.com",
                       entities='[{"type": "url", "offset": 0, "length": 3}, '
                                '{"type": "bold", "offset": 0, "length": 3}]')
    assert answer["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 3},
                                            {"type": "url", "offset": 4, "length": 11}]
    ignored = await raw("sendMessage", chat_id=uid, text="plain", entities="not json")
    assert "entities" not in ignored["result"]


async def test_user_text_is_cleaned_and_gets_entities(sandbox_client: SandboxClient,
                                                      sandbox: Sandbox) -> None:
    user = await sandbox_client.create_user("Аня")
    sent = await sandbox_client.send(user["id"], "  /start src_ig\r\n see relove.ru #йога  ")
    assert sent["text"] == "/start src_ig\n see relove.ru #йога"
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6},
                                {"type": "url", "offset": 19, "length": 9},
                                {"type": "hashtag", "offset": 29, "length": 5}]
    update = sandbox.updates.pending[-1]["message"]
    assert update["entities"] == sent["entities"]
