"""What a marker or context write may hold, refused with ONE line and the same rule on both
databases: nesting, 64-bit ids and numbers, NUL and lone surrogates (docs/markers.md, Limits)."""

from __future__ import annotations

import pytest

from relove.cli import main
from relove.db.models import User
from relove.errors import InvalidInput, InvalidKey
from relove.users import service
from relove.users.paths import INT64_MAX, INT64_MIN, MAX_NESTING


def _nested(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture
async def user(session_factory):
    async with session_factory.begin() as s:
        s.add(User(id=1, markers={"keep": 1}, context={"keep": 1}))
    return session_factory


async def _docs(sessions) -> dict:
    async with sessions() as s:
        return await service.get_user_documents(s, 1)


BAD_VALUES = [
    (_nested(10_000), f"deeper than {MAX_NESTING} levels"),
    ([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "deeper than"),
    (2**63, "signed 64-bit"),
    ({"n": INT64_MIN - 1}, "signed 64-bit"),
    ("\ud800", "lone surrogate"),
    (["ok", "a\udfffb"], "lone surrogate"),
    ({"k\ud800": 1}, "lone surrogate"),
    ("a\x00b", "NUL"),
    ({"profile": {"bio\x00": "x"}}, "NUL"),
    ({1: "x"}, "keys must be text"),
    (float("inf"), "not finite"),
    ({1, 2}, "cannot be stored as JSON"),
]


@pytest.mark.parametrize(("value", "fragment"), BAD_VALUES)
async def test_values_the_databases_read_differently_are_refused(user, value, fragment):
    for doc in ("markers", "context"):
        async with user.begin() as s:
            with pytest.raises(InvalidInput) as info:
                await service.set_values(s, 1, {"x": value}, doc=doc)
        assert fragment in str(info.value)
        assert len(str(info.value)) < 200 and "\n" not in str(info.value)
    assert await _docs(user) == {"markers": {"keep": 1}, "context": {"keep": 1}}


async def test_every_writer_applies_the_same_rule(user):
    async with user.begin() as s:
        with pytest.raises(InvalidInput, match="NUL"):
            await service.set_once(s, 1, {"x": "\x00"})
        with pytest.raises(InvalidInput, match="NUL"):
            await service.add_to_list(s, 1, "tags", "ok", "\x00")
        with pytest.raises(InvalidInput, match="deeper"):
            await service.append_bounded(s, 1, "turns", _nested(MAX_NESTING + 1), keep=5)
        with pytest.raises(InvalidInput, match="lone surrogate"):
            await service.set_values_if(s, 1, {"x": 1}, expect={"keep": "\udc00"})
        with pytest.raises(InvalidInput, match="signed 64-bit"):
            await service.increment(s, 1, "n", 2**63)
        with pytest.raises(InvalidKey):
            await service.set_values(s, 1, {"a\x00": 1})
    assert await _docs(user) == {"markers": {"keep": 1}, "context": {"keep": 1}}


@pytest.mark.parametrize("user_id", [2**63, INT64_MIN - 1, 10**30])
async def test_ids_outside_64_bits_are_refused_with_one_line(user, user_id):
    async with user.begin() as s:
        with pytest.raises(InvalidInput, match="signed 64-bit"):
            await service.set_values(s, user_id, {"x": 1})
        with pytest.raises(InvalidInput, match="signed 64-bit"):
            await service.get_user_documents(s, user_id)


async def test_values_at_the_limits_are_stored_and_read_back_exactly(user):
    edge = {"deep": _nested(MAX_NESTING - 1), "big": INT64_MAX, "small": INT64_MIN,
            "text": "Ёж 🦔 \t\n", "list": [[["x"]]]}  # fmt: skip
    async with user.begin() as s:
        await service.set_values(s, 1, {"edge": edge})
    assert (await _docs(user))["markers"]["edge"] == edge


def test_the_cli_refuses_with_one_line(user, database_url, monkeypatch, capsys):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    for argv in (["users", "set", "1", "x=\"a\\u0000b\""], ["users", "show", str(2**63)],
                 ["users", "set", str(2**64), "x=1"], ["users", "set", "1", "n=1e999"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
