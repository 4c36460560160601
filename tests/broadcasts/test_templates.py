"""Broadcast templates (docs/broadcasts.md, Templates): typos refused at creation with a
suggestion, bombs refused with one line, null markers read as missing — on both databases
(the bot's /broadcast: tests/bot/test_broadcast_templates.py)."""

from __future__ import annotations

import pytest

from relove.cli import main
from relove.db.models import User


@pytest.fixture
async def people(session_factory, database_url, monkeypatch):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_LOG_LEVEL", "WARNING")
    async with session_factory.begin() as s:
        s.add_all([User(id=1, first_name="Аня", markers={"city": "Москва", "nick": None,
                                                         "tags": ["йога", "арт"]}),
                   User(id=2, first_name="Олег", markers={"city": "Москва"})])  # fmt: skip
    return session_factory


def _create(capsys, text: str) -> tuple[int, str, str]:
    code = main(["broadcast", "create", "--name", "t", "--filter", "city = 'Москва'",
                 "--text", text])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Привет, {{ first_name }}!", "did you mean user.first_name?"),
        ("{{ nick | default('друг') }}", "did you mean markers.nick?"),
        ("{{ 'a' * 10**8 }}", "longer than 65,536 characters"),
        ("{% for i in range(10**7) %}x{% endfor %}", "range() may produce at most"),
    ],
)
def test_bad_templates_are_refused_at_creation_with_one_line(people, capsys, text, fragment):
    code, _, err = _create(capsys, text)
    assert code == 1 and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_nulls_lists_and_missing_keys_render_sensibly(people, capsys):
    code, out, err = _create(
        capsys, "{{ user.first_name }}: {{ markers.nick | default('друг') }} "
                "[{{ markers.tags }}] {{ markers.missing | default('—') }}")  # fmt: skip
    assert code == 0, err
    broadcast_id = out.split()[1]
    assert main(["broadcast", "preview", broadcast_id]) == 0
    out = capsys.readouterr().out
    assert "Аня: друг [йога, арт] —" in out and "Олег: друг [] —" in out


def test_a_broadcast_stored_before_names_were_checked_still_sends():
    from relove.broadcasts.content import Recipient
    from relove.broadcasts.models import Broadcast
    from relove.broadcasts.service import template_of

    stored = Broadcast(name="old", text="Hi {{ first_name }}!", buttons=[], filter="is_active")
    assert template_of(stored).render(Recipient(id=1, first_name="Аня")).text == "Hi !"
