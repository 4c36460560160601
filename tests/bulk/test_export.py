"""Export: fields, filters, formats — and export → import reproduces users exactly."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from relove.bulk.columns import encode_cell, encode_list, parse_json_or_text, parse_list
from relove.db.models import User
from relove.errors import FilterError, InvalidInput
from tests.bulk.conftest import do_import, export_text, read_users
from tests.conftest import clear_tables

TRICKY = [
    "", " ", "42", " 42", "007", "true", "null", "[1]", '{"a":1}', '"q"', 'say "hi"', "a|b",
    '"a|b', "|", "Москва", "a,b", "line\nbreak", "tab\there", "[red]x[/red]", "NaN", "-",
    "1e5", "-0", "{", "[",
]  # fmt: skip

PEOPLE = [
    User(id=1, username="anna", first_name="Анна", last_name="Петрова", gender="female",
         markers={"city": "Москва", "tags": ["yoga", "a|b", "42", ""], "score": 5,
                  "vip": True, "profile": {"age": 30, "langs": ["ru"]}, "n": None},
         context={"summary": "любит йогу", "turns": [{"role": "user", "text": "привет"}]}),
    User(id=2, username=None, first_name="[bold]Bob[/bold]", is_active=False,
         markers={"city": "42", "tags": [], "mixed": [1, {"a": 2}], "empty": ""}),
    User(id=9_007_199_254_740_993, markers={"tags": "not a list", "big": 2**62, "f": 0.5}),
    User(id=4),
]  # fmt: skip


async def _seed(engine, users) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(User))
        await conn.execute(
            User.__table__.insert(),
            [
                {"id": u.id, "username": u.username, "first_name": u.first_name,
                 "last_name": u.last_name, "gender": u.gender or "unknown",
                 "is_active": True if u.is_active is None else u.is_active,
                 "markers": u.markers or {}, "context": u.context or {}}
                for u in users
            ],
        )  # fmt: skip


def test_cells_read_back_exactly():
    for value in [*TRICKY, 0, -1, 1.5, True, False, None, [], {}, [1, "a"], {"x": [None]}]:
        assert parse_json_or_text(encode_cell(value)) == value, value
    items = [t for t in TRICKY] + [1, 2.5, True, None]
    assert parse_list(encode_list(items), None) == items


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), st.integers(), st.booleans(), st.none()),
                min_size=1, max_size=5))  # fmt: skip
def test_list_cells_read_back_exactly(items):
    assert parse_list(encode_list(items), None) == items


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_round_trip_reproduces_users(db, fmt):
    await _seed(db, PEOPLE)
    before = await read_users(db)
    exported = await export_text(db, format=fmt)
    # Into the same database: nothing changes, in any mode that updates.
    for mode in ("merge", "overwrite"):
        s = await do_import(db, exported, format=fmt, mode=mode)
        assert (s.created, s.updated, s.unchanged, s.rejected) == (0, 0, 4, 0), mode
    # Into an empty one: the same users.
    await clear_tables(db)
    s = await do_import(db, exported, format=fmt)
    assert (s.created, s.rejected) == (4, 0)
    assert await read_users(db) == before


async def test_csv_columns(db):
    await _seed(db, PEOPLE)
    rows = list(csv.reader(io.StringIO(await export_text(db))))
    assert rows[0] == [
        "id", "username", "first_name", "last_name", "gender", "is_active",
        "markers.big", "markers.city", "markers.empty", "markers.f", "markers.mixed",
        "markers.n", "markers.profile", "markers.score", "markers.tags", "markers.vip", "context",
    ]  # fmt: skip
    anna = dict(zip(rows[0], rows[1], strict=True))
    assert anna["markers.city"] == "Москва" and anna["markers.score"] == "5"
    assert anna["markers.tags"] == '["yoga","a|b","42",""]'  # mixed users: JSON
    assert anna["markers.n"] == "null" and anna["is_active"] == "true"
    bob = dict(zip(rows[0], rows[2], strict=True))
    assert bob["markers.city"] == '"42"' and bob["username"] == "" and bob["markers.big"] == ""


async def test_list_columns_when_every_value_is_a_list(db):
    await _seed(db, [User(id=1, markers={"tags": ["a", "b|c", 3]}), User(id=2, markers={})])
    text = await export_text(db, fields=("id", "markers.*"))
    assert text.splitlines() == ["id,markers.tags[]", '1,"a|""b|c""|3"', "2,"]


async def test_fields_filter_and_jsonl(db):
    await _seed(db, PEOPLE)
    text = await export_text(
        db, format="jsonl", filter='city = "Москва" or is_active = false',
        fields=("id", "first_name", "markers.profile.age", "markers.tags[]", "created_at"),
    )  # fmt: skip
    objs = [json.loads(line) for line in text.splitlines()]
    assert [o["id"] for o in objs] == [1, 2]
    assert objs[0]["markers.profile.age"] == 30 and objs[0]["markers.tags[]"][0] == "yoga"
    assert "markers.profile.age" not in objs[1] and objs[0]["created_at"]
    text = await export_text(db, fields=("id", "markers"), filter="score > 1", delimiter=";")
    assert text.splitlines()[0] == "id;markers" and len(text.splitlines()) == 2


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"fields": ("id", "nope")}, InvalidInput, "unknown field 'nope'"),
        ({"fields": ("id", "id")}, InvalidInput, "twice"),
        ({"filter": "city = "}, FilterError, "expected a value"),
        ({"format": "xml"}, InvalidInput, "unknown format"),
    ],
)
async def test_bad_options(db, options, error, message):
    with pytest.raises(error, match=message):
        await export_text(db, **options)


async def test_empty_database_exports_a_header(db):
    assert await export_text(db) == "id,username,first_name,last_name,gender,is_active,context\n"
    assert await export_text(db, format="jsonl") == ""


# -- property: random users survive export → import ----------------------------------------------
_text = st.text(alphabet="ab |\",\n{}[]:1-Яё\\t", max_size=5)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.sampled_from([0.5, -2.25, 1e3]),
    _text, st.sampled_from(TRICKY),
)  # fmt: skip
_value = st.recursive(
    _scalar,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from("xy"), c)),
    max_leaves=5,
)
_doc = st.dictionaries(st.sampled_from(["a", "tags", "Город", "b c"]), _value, max_size=4)
_name = st.one_of(st.none(), _text.map(str.strip).filter(bool))
_users = st.lists(
    st.fixed_dictionaries({
        "username": st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_]{2,10}", fullmatch=True)),
        "first_name": _name, "last_name": _name,
        "gender": st.sampled_from(["male", "female", "unknown"]), "is_active": st.booleans(),
        "markers": _doc, "context": _doc,
    }),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(
    max_examples=int(os.environ.get("RELOVE_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=_users, fmt=st.sampled_from(["csv", "jsonl"]))
async def test_property_export_import_is_identity(engine, population, fmt):
    await _seed(engine, [User(id=i + 1, **u) for i, u in enumerate(population)])
    before = await read_users(engine)
    exported = await export_text(engine, format=fmt)
    s = await do_import(engine, exported, format=fmt)
    assert (s.updated, s.rejected) == (0, 0)
    async with engine.begin() as conn:
        await conn.execute(delete(User))
    s = await do_import(engine, exported, format=fmt)
    assert s.rejected == 0
    assert await read_users(engine) == before
