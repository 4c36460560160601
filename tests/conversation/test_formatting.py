"""LLM output reaches Telegram as valid HTML (checked with the sandbox's Telegram HTML parser)
and long answers split on paragraph boundaries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relove.conversation.formatting import split_html, to_html
from relove.telegram.html import parse_html
from relove.telegram.limits import TEXT_LIMIT, utf16_len


def plain(html_text: str) -> str:
    return parse_html(html_text)[0]


def test_markdown_becomes_telegram_html():
    out = to_html("## Итог\n**Важно**: *мягко* и `код` — [сайт](https://relove.example/a?b=1&c=2)")
    assert out == (
        "<b>Итог</b>\n<b>Важно</b>: <i>мягко</i> и <code>код</code> — "
        '<a href="https://relove.example/a?b=1&amp;c=2">сайт</a>'
    )
    parse_html(out)


def test_raw_html_and_broken_markup_are_escaped():
    text = "<b>не закрыт <script>alert(1)</script> & 5 < 6 **половина"
    out = to_html(text)
    assert plain(out) == text
    assert "<script>" not in out


def test_lists_and_code_blocks():
    out = to_html("Шаги:\n- первый\n* второй\n\n```python\nif a < b:\n    print('<x>')\n```")
    assert "• первый\n• второй" in out
    assert "<pre>if a &lt; b:\n    print('&lt;x&gt;')</pre>" in out
    parse_html(out)


def test_javascript_links_are_not_links():
    out = to_html("[жми](javascript:alert(1))")
    assert "<a" not in out
    parse_html(out)


def test_short_answer_is_one_part():
    assert split_html("Привет!\n\nКак дела?") == ["Привет!\n\nКак дела?"]


def test_long_answer_splits_on_paragraphs():
    paragraphs = [f"Абзац {i}. " + "слово " * 150 for i in range(12)]
    parts = split_html("\n\n".join(paragraphs))
    assert len(parts) > 1
    assert all(len(p) <= TEXT_LIMIT for p in parts)
    for part in parts:
        parse_html(part)
        # every part starts at a paragraph start
        assert part.startswith("Абзац ")
    rejoined = "\n\n".join(parts)
    assert plain(rejoined).split("\n\n") == [p.strip() for p in paragraphs]


def test_one_huge_paragraph_is_cut_on_words_never_inside_an_entity():
    text = ("a&b <c> " * 2000).strip()
    parts = split_html(text)
    assert all(len(p) <= TEXT_LIMIT for p in parts)
    assert "".join(plain(p) + " " for p in parts).split() == text.split()


def test_huge_code_block_stays_preformatted():
    code = "\n".join(f"line {i} <tag>" for i in range(1000))
    parts = split_html(f"```\n{code}\n```")
    assert len(parts) > 1
    for part in parts:
        assert part.startswith("<pre>") and part.endswith("</pre>")
        assert len(part) <= TEXT_LIMIT
        parse_html(part)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab *_`[]()~#-<>&;\n\"'hs:/.")), max_size=300))
def test_any_output_is_valid_telegram_html(text):
    for part in split_html(text, limit=120):
        assert len(part) <= 120
        parse_html(part)  # raises on anything Telegram would refuse


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_any_unicode_is_valid_telegram_html(text):
    for part in split_html(text):
        parse_html(part)


def test_emoji_answers_split_by_utf16_units():
    """Telegram counts UTF-16 code units: 😀 is two. 4039 characters of emoji are 8039 units."""
    text = ("😀" * 100 + " ") * 40
    parts = split_html(text)
    assert len(parts) > 1
    for part in parts:
        assert utf16_len(plain(part)) <= TEXT_LIMIT
        assert utf16_len(part) <= TEXT_LIMIT
    assert "".join(plain(p).replace(" ", "").replace("\n", "") for p in parts) == "😀" * 4000


def test_one_huge_emoji_word_is_cut_between_characters():
    parts = split_html("👍🏽" * 3000 + " a&b " + "😀" * 5000)
    for part in parts:
        assert utf16_len(plain(part)) <= TEXT_LIMIT
        parse_html(part)
    assert "".join(plain(p) for p in parts).count("😀") == 5000


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab *_`\n&<") + ["😀", "𝒳", "é"]), max_size=400))
def test_astral_characters_never_overflow_a_part(text):
    for part in split_html(text, limit=60):
        assert utf16_len(part) <= 60
        parse_html(part)
