"""Data is text in the operator's terminal: names, markers, segment names, filters, broadcast
texts and error messages never act as Rich markup, emoji codes or terminal control sequences."""

from __future__ import annotations

import json

import pytest

from relove.cli import main
from relove.db.models import User

CLOSE = "[/]"  # Rich markup: crashed every listing with MarkupError
LINK = "[link=https://evil.example]x[/link]"  # Rich markup: a clickable link in the terminal
ESC = "\x1b]8;;https://evil.example\x07y"  # a raw OSC 8 link: shown escaped, never sent
EMOJI = ":cross_mark:"  # Rich emoji code: shown as typed


@pytest.fixture
async def hostile(session_factory, database_url, monkeypatch):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: no folding inside the names
    async with session_factory.begin() as s:
        s.add_all([
            User(id=1, username="u1", first_name=CLOSE, last_name=LINK,
                 markers={"city": "Москва", "source": CLOSE, "tag": LINK}),
            User(id=2, username="u2", first_name=ESC, last_name=EMOJI,
                 markers={"city": "Москва", "source": LINK}),
        ])  # fmt: skip


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _shows_as_text(out: str, *values: str) -> None:
    for value in values:
        shown = value.replace("\x1b", "\\x1b").replace("\x07", "\\x07")
        assert shown in out, (shown, out)
    assert "\x1b" not in out and "\x07" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "find", 'city = "Москва"'],
        ["stats", "breakdown", "first_name"],
        ["stats", "breakdown", "last_name"],
        ["stats", "breakdown", "source"],
        ["stats"],
    ],
)
def test_listings_print_user_data_as_text(hostile, capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    expected = {"users": (CLOSE, LINK, ESC, EMOJI), "first_name": (CLOSE, ESC),
                "last_name": (LINK, EMOJI), "source": (CLOSE, LINK)}  # fmt: skip
    _shows_as_text(out, *expected.get(argv[-1], expected.get(argv[0], (CLOSE, LINK))))


def test_segment_names_and_filters_are_text_everywhere(hostile, capsys):
    for name in (CLOSE, LINK):
        code, out, err = _run(capsys, "segment", "save", name, f"tag = {json.dumps(LINK)}",
                              "-d", f"{EMOJI} {ESC}")  # fmt: skip
        assert code == 0, err
        _shows_as_text(out, name)
    code, out, err = _run(capsys, "segment", "save", ESC, "tag exists")
    assert code == 1 and "control character" in err
    assert "\x1b" not in err and "evil.example" in err
    code, out, err = _run(capsys, "segment", "list")
    assert code == 0, err
    _shows_as_text(out, CLOSE, LINK, ESC, EMOJI)
    code, out, err = _run(capsys, "segment", "show", LINK)
    assert code == 0, err
    _shows_as_text(out, LINK, EMOJI)
    assert _run(capsys, "segment", "delete", CLOSE)[0] == 0


@pytest.mark.parametrize("name", [CLOSE, LINK, ESC])
def test_error_messages_carrying_data_are_one_line_of_text(hostile, capsys, name):
    code, out, err = _run(capsys, "segment", "show", name)
    assert code == 1
    assert err.startswith("error: segment ") and len(err.strip().splitlines()) == 1
    _shows_as_text(err, name)
    code, _, err = _run(capsys, "users", "count", f"segment:{json.dumps(name)}")
    assert code == 2 and "unknown segment" in err
    _shows_as_text(err, name)


def test_broadcast_preview_and_list_print_data_as_text(hostile, capsys):
    code, out, err = _run(capsys, "broadcast", "create", "--name", LINK, "--filter",
                          f"source = {json.dumps(CLOSE)}", "--text",
                          "Hi {{ user.first_name }} {{ user.last_name }} [/]",
                          "--button", f"{CLOSE}|https://example.org")  # fmt: skip
    assert code == 0, err
    broadcast_id = out.split()[1]
    code, out, err = _run(capsys, "broadcast", "preview", broadcast_id)
    assert code == 0, err
    _shows_as_text(out, LINK, f"Hi {CLOSE} {LINK} [/]", f"[{CLOSE} → https://example.org]")
    code, out, err = _run(capsys, "broadcast", "list")
    assert code == 0, err
    _shows_as_text(out, LINK, CLOSE)
