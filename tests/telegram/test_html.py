from __future__ import annotations

import pytest

from relove.errors import InvalidInput
from relove.telegram.html import EntityParseError, check_html, parse_html
from relove.telegram.limits import utf16_len


def test_tags_become_entities_with_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <b>жир <i>курсив</i></b> <a href="https://x.org/?a=1&amp;b=2">ссылка</a>')
    assert text == "😀 жир курсив ссылка"
    assert {"type": "bold", "offset": 3, "length": 10} in entities
    assert {"type": "italic", "offset": 7, "length": 6} in entities
    link = {"type": "text_link", "offset": 14, "length": 6, "url": "https://x.org/?a=1&b=2"}
    assert link in entities


def test_every_supported_tag() -> None:
    text, entities = parse_html(
        "<strong>a</strong><em>b</em><u>c</u><ins>d</ins><s>e</s><strike>f</strike><del>g</del>"
        '<span class="tg-spoiler">h</span><tg-spoiler>i</tg-spoiler><code>j</code>'
        '<pre><code class="language-python">k</code></pre><blockquote>l</blockquote>'
        '<blockquote expandable>m</blockquote><tg-emoji emoji-id="5368324170671202286">n</tg-emoji>'
    )
    assert text == "abcdefghijklmn"
    kinds = [e["type"] for e in entities]
    assert kinds == ["bold", "italic", "underline", "underline", "strikethrough", "strikethrough",
                     "strikethrough", "spoiler", "spoiler", "code", "pre", "blockquote",
                     "expandable_blockquote", "custom_emoji"]
    assert entities[10]["language"] == "python"


def test_entities_and_ampersands() -> None:
    assert parse_html("&lt;b&gt; &amp; &quot;q&quot; &#8364; &#x41;")[0] == '<b> & "q" € A'
    # Unknown named entities and bare ampersands are literal text, like Telegram.
    assert parse_html("Tom &amp Jerry &nbsp; R&D")[0] == "Tom &amp Jerry &nbsp; R&D"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href>x</a>",
         'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0'),
        ("Ж<script>", 'Unsupported start tag "script" at byte offset 2'),
    ],
)
def test_bad_markup_is_refused_with_telegrams_words(source: str, error: str) -> None:
    with pytest.raises(EntityParseError) as info:
        parse_html(source)
    assert str(info.value) == error


def test_utf16_len() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("привет") == 6
    assert utf16_len("😀😀") == 4


def test_check_html_counts_visible_text_in_utf16_units() -> None:
    """The limit applies to what the reader sees: tags are free, an emoji counts two."""
    check_html("<b>" + "a" * 10 + "</b>", limit=10)
    with pytest.raises(InvalidInput, match="longer than 10"):
        check_html("😀" * 6, limit=10)
    with pytest.raises(InvalidInput, match="not valid Telegram HTML: Unsupported start tag"):
        check_html("<div>x</div>", limit=100)
    with pytest.raises(InvalidInput, match="empty"):
        check_html("<b> </b>", limit=100)
    check_html("", limit=100, allow_empty=True)
