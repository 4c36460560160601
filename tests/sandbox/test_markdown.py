"""parse_mode Markdown and MarkdownV2: parsed like Telegram, bad markup refused with Telegram's
exact description."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from relove.sandbox.core import Sandbox
from relove.sandbox.markdown import MarkdownError, parse_markdown

RESERVED = "is reserved and must be escaped with the preceding '\\'"


@pytest.mark.parametrize("text,error", [
    ("Hello.", f"Character '.' {RESERVED}"),
    ("a - b", f"Character '-' {RESERVED}"),
    ("1 + 1 = 2", f"Character '+' {RESERVED}"),
    ("a | b", f"Character '|' {RESERVED}"),
    ("wow!", f"Character '!' {RESERVED}"),
    ("(x)", f"Character '(' {RESERVED}"),
    ("#tag", f"Character '#' {RESERVED}"),
    ("text >not a quote", f"Character '>' {RESERVED}"),
    ("*bold", "Can't find end of Bold entity at byte offset 0"),
    ("Привет *мир", "Can't find end of Bold entity at byte offset 13"),
    ("_it", "Can't find end of Italic entity at byte offset 0"),
    ("__under", "Can't find end of Underline entity at byte offset 0"),
    ("~s", "Can't find end of Strikethrough entity at byte offset 0"),
    ("||sp", "Can't find end of Spoiler entity at byte offset 0"),
    ("`code", "Can't find end of Code entity at byte offset 0"),
    ("```py\ncode", "Can't find end of PreCode entity at byte offset 0"),
    ("```\ncode", "Can't find end of Pre entity at byte offset 0"),
    ("[link", "Can't find end of TextUrl entity at byte offset 0"),
    ("[link](http://x.com", "Can't find end of a URL at byte offset 7"),
    ("*a _b c*", "Can't find end of Bold entity at byte offset 7"),
    ("![x](http://x.com)", "Invalid tg://emoji or tg://time URL specified"),
    ("![x] y", "The entity must contain a tg://emoji or tg://time URL"),
])
def test_markdown_v2_refusals(text: str, error: str) -> None:
    with pytest.raises(MarkdownError) as refused:
        parse_markdown(text, 2)
    assert str(refused.value) == error


def test_markdown_v2_entities() -> None:
    text = ("*bold _italic_ bold* __under__ ~strike~ ||spoiler|| `a.b-c` "
            "```python\nprint(1)``` [site](Example.COM/path) 1\\.5 \\- \\*")
    plain, entities = parse_markdown(text, 2)
    assert plain == ("bold italic bold under strike spoiler a.b-c print(1) site 1.5 - *")
    assert entities == [
        {"type": "bold", "offset": 0, "length": 16},
        {"type": "italic", "offset": 5, "length": 6},
        {"type": "underline", "offset": 17, "length": 5},
        {"type": "strikethrough", "offset": 23, "length": 6},
        {"type": "spoiler", "offset": 30, "length": 7},
        {"type": "code", "offset": 38, "length": 5},
        {"type": "pre", "offset": 44, "length": 8, "language": "python"},
        {"type": "text_link", "offset": 53, "length": 4, "url": "http://example.com/path"},
    ]
    quote, entities = parse_markdown(">first\n>second\n**>hidden\n>more||", 2)
    assert quote == "first\nsecond\nhidden\nmore"
    assert [e["type"] for e in entities] == ["blockquote", "expandable_blockquote"]
    _, entities = parse_markdown("[Аня](tg://user?id=100000001) ![👍](tg://emoji?id=5368)", 2)
    assert entities == [
        {"type": "text_mention", "offset": 0, "length": 3, "user_id": 100000001},
        {"type": "custom_emoji", "offset": 4, "length": 2, "custom_emoji_id": "5368"}]
    plain, entities = parse_markdown("[bad link](not a url)", 2)
    assert (plain, entities) == ("bad link", [])  # an invalid URL is dropped, not refused


def test_markdown_legacy() -> None:
    plain, entities = parse_markdown("_a_ *b* `c` ```sh\nls``` [d](http://e.com) \\_x\\_", 1)
    assert plain == "a b c ls d _x_"
    assert entities == [
        {"type": "italic", "offset": 0, "length": 1},
        {"type": "bold", "offset": 2, "length": 1},
        {"type": "code", "offset": 4, "length": 1},
        {"type": "pre", "offset": 6, "length": 2, "language": "sh"},
        {"type": "text_link", "offset": 9, "length": 1, "url": "http://e.com/"},
    ]
    assert parse_markdown("1.5 - (ok)!", 1) == ("1.5 - (ok)!", [])  # nothing reserved
    with pytest.raises(MarkdownError, match="^Can't find end of the entity starting at byte "
                                            "offset 6$"):
        parse_markdown("Hello *world", 1)


async def test_bot_api_refuses_bad_markdown_like_telegram(plain_bot: Bot, sandbox: Sandbox
                                                          ) -> None:
    uid = sandbox.world.add_user(first_name="Аня", started=True).id
    with pytest.raises(TelegramBadRequest) as refused:
        await plain_bot.send_message(uid, "Hello.", parse_mode="MarkdownV2")
    assert refused.value.message == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
        "with the preceding '\\'")
    with pytest.raises(TelegramBadRequest) as refused:
        await plain_bot.send_message(uid, "*bold", parse_mode="Markdown")
    assert refused.value.message == (
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte "
        "offset 0")
    with pytest.raises(TelegramBadRequest) as refused:
        await plain_bot.send_photo(uid, BufferedInputFile(b"\x89PNG", "p.png"),
                                   caption="_x", parse_mode="markdownv2")
    assert refused.value.message == (
        "Bad Request: can't parse entities: Can't find end of Italic entity at byte offset 0")
    assert sandbox.world.chats[uid].messages == {}  # nothing was sent
    sent = await plain_bot.send_message(uid, "*Итог:* 1\\.5 [подробнее](t.me/relove)",
                                        parse_mode="MarkdownV2")
    assert sent.text == "Итог: 1.5 подробнее"
    assert [(e.type, e.offset, e.length, e.url) for e in sent.entities or []] == [
        ("bold", 0, 5, None), ("text_link", 10, 9, "http://t.me/relove")]
