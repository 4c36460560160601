"""Import: modes, encodings, rejected rows, atomic rows, idempotent re-import — on every backend."""

from __future__ import annotations

import asyncio
import codecs
import io
import json

import pytest
from sqlalchemy import select

from relove.bulk import ImportOptions, import_rows, open_source
from relove.db.models import MARKERS_MAX_BYTES, User
from relove.errors import InvalidInput
from relove.events import Event
from tests.bulk.conftest import Errors, do_import, read_users

HEADER = "id,username,first_name,last_name,gender,is_active,markers.city,markers.tags[]\n"


async def _seed(session_factory, *users: User) -> None:
    async with session_factory.begin() as s:
        s.add_all(users)


async def test_create_then_reimport_changes_nothing(db):
    data = HEADER + (
        "1,@anna,Анна,Петрова,female,true,Москва,yoga|music\n"
        "2,bob,Bob,,male,no,42,\n"
        "3,,,,,,,a\n"
    )
    s = await do_import(db, data)
    assert (s.rows, s.created, s.updated, s.unchanged, s.rejected) == (3, 3, 0, 0, 0)
    users = await read_users(db, with_times=True)
    assert users[1]["username"] == "anna" and users[1]["last_name"] == "Петрова"
    assert users[1]["markers"] == {"city": "Москва", "tags": ["yoga", "music"]}
    assert users[1]["gender"] == "female" and users[1]["is_active"] is True
    assert users[2]["markers"] == {"city": 42} and users[2]["is_active"] is False
    assert users[3] | {"created_at": None, "updated_at": None} == {
        "id": 3, "username": None, "first_name": None, "last_name": None, "gender": "unknown",
        "is_active": True, "markers": {"tags": ["a"]}, "context": {}, "created_at": None,
        "updated_at": None, "last_seen_at": None,
    }  # fmt: skip

    again = await do_import(db, data)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert await read_users(db, with_times=True) == users  # not even updated_at moved


async def test_merge_keeps_other_keys_and_fields(db, session_factory):
    await _seed(
        session_factory,
        User(id=1, username="old", first_name="Анна", gender="female", is_active=False,
             markers={"city": "Казань", "vip": True, "profile": {"age": 30}},
             context={"summary": "любит йогу"}),
    )  # fmt: skip
    data = (
        "id,username,markers.city,markers.profile.lang,context.source\n"
        "1,new,Москва,ru,csv\n"
    )
    s = await do_import(db, data)
    assert (s.created, s.updated) == (0, 1)
    u = (await read_users(db))[1]
    assert u["username"] == "new" and u["first_name"] == "Анна"  # an absent column is kept
    assert u["gender"] == "female" and u["is_active"] is False
    assert u["markers"] == {"city": "Москва", "vip": True, "profile": {"age": 30, "lang": "ru"}}
    assert u["context"] == {"summary": "любит йогу", "source": "csv"}


async def test_empty_cells_change_nothing(db, session_factory):
    await _seed(session_factory, User(id=1, first_name="Анна", markers={"city": "Казань"}))
    s = await do_import(db, HEADER + "1,,,,,,,\n")
    assert (s.updated, s.unchanged) == (0, 1)
    u = (await read_users(db))[1]
    assert u["first_name"] == "Анна" and u["markers"] == {"city": "Казань"}


async def test_overwrite_replaces_the_given_documents(db, session_factory):
    await _seed(
        session_factory,
        User(id=1, first_name="Анна", markers={"city": "Казань", "vip": True, "o": {"x": 1}},
             context={"summary": "s"}),
        User(id=2, markers={"keep": 1}),
    )  # fmt: skip
    data = "id,markers.city,markers.o.y\n1,Москва,2\n2,,\n"
    s = await do_import(db, data, mode="overwrite")
    assert (s.updated, s.unchanged) == (2, 0)
    users = await read_users(db)
    assert users[1]["markers"] == {"city": "Москва", "o": {"y": 2}}
    assert users[1]["context"] == {"summary": "s"}  # no context column: context kept
    assert users[1]["first_name"] == "Анна"
    assert users[2]["markers"] == {}  # the row gives markers: none
    again = await do_import(db, data, mode="overwrite")
    assert (again.updated, again.unchanged) == (0, 2)


async def test_create_mode_skips_existing_users(db, session_factory):
    await _seed(session_factory, User(id=1, first_name="Анна", markers={"city": "Казань"}))
    s = await do_import(db, "id,first_name,markers.city\n1,X,Y\n2,Bob,Омск\n", mode="create")
    assert (s.created, s.updated, s.skipped) == (1, 0, 1)
    users = await read_users(db)
    assert users[1]["first_name"] == "Анна" and users[1]["markers"] == {"city": "Казань"}
    assert users[2]["markers"] == {"city": "Омск"}


async def test_markers_only_touches_existing_users_markers_only(db, session_factory):
    await _seed(
        session_factory, User(id=1, first_name="Анна", markers={"a": 1}, context={"c": 1})
    )
    data = "id,first_name,markers.city,context.c\n1,X,Москва,2\n2,Bob,Омск,3\n"
    s = await do_import(db, data, mode="markers-only")
    assert (s.created, s.updated, s.skipped, s.unchanged) == (0, 1, 1, 0)
    users = await read_users(db)
    assert list(users) == [1]
    assert users[1]["first_name"] == "Анна" and users[1]["context"] == {"c": 1}
    assert users[1]["markers"] == {"a": 1, "city": "Москва"}
    again = await do_import(db, data, mode="markers-only")
    assert (again.updated, again.skipped, again.unchanged) == (0, 1, 1)


async def test_markers_json_column_and_typed_values(db):
    data = (
        "id,markers,markers.score,markers.code,markers.n\n"
        '1,"{""vip"": true, ""nested"": {""a"": null}, ""nothing"": null, ""l"": [1, ""x""]}",'
        '7,007,null\n'
    )
    await do_import(db, data, types={("markers", ("code",)): "str"})
    m = (await read_users(db))[1]["markers"]
    assert m == {
        "vip": True, "nested": {"a": None}, "nothing": None, "l": [1, "x"], "score": 7,
        "code": "007", "n": None,
    }  # fmt: skip


async def test_values_parse_as_json_unless_typed(db):
    data = (
        "id,markers.a,markers.b,markers.c,markers.d,markers.e,markers.f\n"
        '1,42,true,"""42""",text,NaN,1.5\n'
    )
    await do_import(db, data)
    m = (await read_users(db))[1]["markers"]
    assert m == {"a": 42, "b": True, "c": "42", "d": "text", "e": "NaN", "f": 1.5}
    types = {("markers", ("a",)): "str", ("markers", ("b",)): "bool", ("markers", ("f",)): "float"}
    await do_import(db, "id,markers.a,markers.b,markers.f\n1,42,да,\"2,5\"\n", types=types)  # type: ignore[arg-type]
    m = (await read_users(db))[1]["markers"]
    assert (m["a"], m["b"], m["f"]) == ("42", True, 2.5)


async def test_list_items_and_separator(db):
    data = 'id,markers.tags[],markers.nums[]\n1,"a|""b|c""|42|""42""",1|2|3\n'
    await do_import(db, data)
    m = (await read_users(db))[1]["markers"]
    assert m == {"tags": ["a", "b|c", 42, "42"], "nums": [1, 2, 3]}
    await do_import(db, "id,markers.nums[]\n1,1|2\n", types={("markers", ("nums",)): "str"})
    assert (await read_users(db))[1]["markers"]["nums"] == ["1", "2"]


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("cp1251", b""), ("utf-16", b"")],
)
async def test_encodings(db, encoding, prefix):
    text = "id;first_name;markers.город\r\n1;Анна;Москва\r\n"
    data = prefix + text.encode(encoding)
    given = "cp1251" if encoding == "cp1251" else None
    s = await do_import(db, data, encoding=given)
    assert (s.created, s.rejected) == (1, 0)
    u = (await read_users(db))[1]
    assert u["first_name"] == "Анна" and u["markers"] == {"город": "Москва"}


async def test_bytes_invalid_in_the_encoding_reject_their_row_only(db):
    data = "id,first_name\n1,Анна\n".encode() + b"2,\xff\xfe\n" + b"3,Bob\n"
    errors = Errors()
    s = await do_import(db, data, errors=errors)
    assert (s.created, s.rejected) == (2, 1)
    assert "not valid text" in errors.lines[3]


async def test_bom_contradicting_the_encoding_is_refused(db):
    with pytest.raises(InvalidInput, match="byte order mark"):
        await do_import(db, codecs.BOM_UTF8 + b"id\n1\n", encoding="cp1251")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("first_name\n", "no id column"),
        ("id,id\n", "appears twice"),
        ("id,city\n", "unknown column 'city'"),
        ("id,markers.profile,markers.profile.age\n", "overlap"),
        ("id,markers.\x01\n", "forbidden character"),
        ("", "empty"),
    ],
)
async def test_a_bad_header_changes_nothing(db, header, message):
    with pytest.raises(InvalidInput, match=message):
        await do_import(db, header + "1,2,3\n" if header else "")
    assert await read_users(db) == {}


async def test_rejected_rows_have_line_numbers_and_reasons(db):
    big = "x" * (MARKERS_MAX_BYTES + 10)
    data = HEADER + (
        "1,anna,Анна,,female,,,\n"               # 2 ok
        "2,bob\n"                                 # 3 ragged
        "-5,,,,,,,\n"                             # 4 bad id
        "9223372036854775808,,,,,,,\n"            # 5 past 64 bits
        "abc,,,,,,,\n"                            # 6 not a number
        "7,,,,robot,,,\n"                         # 7 gender
        f"8,,,,,,{big},\n"                         # 8 too large
        '9,,"multi\nline",,,,,\n'                 # 9-10 ok (a quoted newline)
        "10,,,,,maybe,,\n"                        # 11 is_active
        f"11,{'u' * 65},,,,,,\n"                  # 12 username too long
    )  # fmt: skip
    errors = Errors()
    s = await do_import(db, data, errors=errors)
    assert (s.rows, s.created, s.rejected) == (10, 2, 8)
    reasons = errors.lines
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 11, 12]
    assert "expected 8 fields, got 2" in reasons[3]
    assert "positive integer" in reasons[4] and "out of range" in reasons[5]
    assert "not a Telegram user id" in reasons[6]
    assert "not male, female or unknown" in reasons[7]
    assert "size limit" in reasons[8]
    assert "is_active" in reasons[11]
    assert "username is longer than 64" in reasons[12]
    assert errors.rows[0][2] == ["2", "bob"]  # the row as read goes to the errors file
    users = await read_users(db)
    assert sorted(users) == [1, 9] and users[9]["first_name"] == "multi\nline"


async def test_a_rejected_row_writes_nothing_of_itself(db, session_factory):
    await _seed(session_factory, User(id=1, first_name="Анна", markers={"city": "Казань"}))
    errors = Errors()
    # valid name and city, but an invalid gender: nothing of the row is applied
    s = await do_import(db, "id,first_name,gender,markers.city\n1,X,robot,Y\n", errors=errors)
    assert s.rejected == 1
    u = (await read_users(db))[1]
    assert u["first_name"] == "Анна" and u["markers"] == {"city": "Казань"}


async def test_a_merge_past_the_size_limit_rejects_that_row_only(db, session_factory):
    half = "y" * (MARKERS_MAX_BYTES // 2 + 100)
    await _seed(session_factory, User(id=5, markers={"a": half}))
    rows = "".join(f"{i},{'b' if i == 5 else 'c'},{half}\n" for i in range(1, 11))
    errors = Errors()
    s = await do_import(db, "id,first_name,markers.b\n" + rows, errors=errors)
    assert (s.created, s.updated, s.rejected) == (9, 0, 1)
    assert "would exceed its size limit" in errors.lines[6]
    users = await read_users(db)
    assert users[5]["first_name"] is None and users[5]["markers"] == {"a": half}
    assert users[6]["markers"] == {"b": half}


async def test_repeated_ids_apply_in_file_order(db):
    data = (
        "id,first_name,markers.n,markers.keep\n"
        "1,A,1,x\n"
        "2,B,1,\n"
        "1,,2,\n"
        "1,C,,\n"
    )
    s = await do_import(db, data)
    assert (s.created, s.updated, s.unchanged) == (2, 2, 0)
    assert (await read_users(db))[1]["markers"] == {"n": 2, "keep": "x"}
    assert (await read_users(db))[1]["first_name"] == "C"


async def test_dry_run_counts_and_shows_changes_but_writes_nothing(db, session_factory):
    await _seed(session_factory, User(id=1, first_name="Анна", markers={"city": "Казань"}))
    data = "id,first_name,markers.city\n1,Анна,Москва\n2,Bob,\nx,,\n"
    s = await do_import(db, data, dry_run=True)
    assert (s.created, s.updated, s.unchanged, s.rejected) == (1, 1, 0, 1)
    assert [(c.id, c.action) for c in s.changes] == [(1, "update"), (2, "create")]
    assert s.changes[0].fields == {"markers": [{"city": "Казань"}, {"city": "Москва"}]}
    users = await read_users(db)
    assert list(users) == [1] and users[1]["markers"] == {"city": "Казань"}


async def test_jsonl(db):
    lines = [
        {"id": 1, "username": "anna", "markers": {"city": "Москва", "o": {"a": [1]}},
         "context.source": "crm", "markers.tags[]": ["a", "b"]},
        {"id": "2", "first_name": None, "is_active": False, "markers.score": "5"},
        "not json",
        {"id": 3, "markers": [1]},
        [1, 2],
        {"id": 4, "color": "red"},
        {"username": "nobody"},
    ]  # fmt: skip
    text = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
    errors = Errors()
    s = await do_import(
        db, text + "\n\n", format="jsonl", errors=errors, types={("markers", ("score",)): "int"}
    )
    assert (s.created, s.rejected) == (2, 5)
    assert sorted(errors.lines) == [3, 4, 5, 6, 7]
    assert "not valid JSON" in errors.lines[3] and "unknown column 'color'" in errors.lines[6]
    users = await read_users(db)
    assert users[1]["markers"] == {"city": "Москва", "o": {"a": [1]}, "tags": ["a", "b"]}
    assert users[1]["context"] == {"source": "crm"}
    assert users[2]["is_active"] is False and users[2]["markers"] == {"score": 5}


async def test_semicolon_delimiter_is_found_in_the_header(db):
    s = await do_import(db, "id;first_name\n1;Анна\n")
    assert s.created == 1 and (await read_users(db))[1]["first_name"] == "Анна"
    s = await do_import(db, "id|first_name\n2|Bob\n", delimiter="|")
    assert s.created == 1


async def test_batches_and_splits(db):
    # Many small batches, with a refused row inside one of them.
    rows = "".join(f"{i},n{i}\n" for i in range(1, 251))
    s = await do_import(db, "id,first_name\n" + rows + "0,zero\n", batch_size=7)
    assert (s.rows, s.created, s.rejected) == (251, 250, 1)
    again = await do_import(db, "id,first_name\n" + rows, batch_size=100)
    assert again.unchanged == 250


async def test_progress_is_reported_per_batch(db):
    seen = []
    data = ("id\n" + "".join(f"{i}\n" for i in range(1, 2001))).encode()

    async def progress(p):
        seen.append((p.rows, p.created))
        await asyncio.sleep(0)

    source = open_source(io.BytesIO(data), size=len(data))
    await import_rows(db, source, ImportOptions(batch_size=500), progress=progress)
    assert seen == [(500, 500), (1000, 1000), (1500, 1500), (2000, 2000), (2000, 2000)]


async def test_one_import_completed_event_and_no_per_user_events(db):
    data = "id,markers.city\n1,Москва\n2,Омск\nx,\n"
    await do_import(db, data, dry_run=True)
    source = open_source(io.BytesIO(data.encode()))
    await import_rows(db, source, ImportOptions(), actor="cli:anna", label="people.csv")
    async with db.connect() as conn:
        events = (await conn.execute(select(Event.__table__))).mappings().all()
    assert len(events) == 1, events  # the dry run wrote none; no user.created / marker.changed
    event = events[0]
    assert (event["name"], event["user_id"], event["source"], event["actor"]) == (
        "import.completed", None, "import", "cli:anna",
    )  # fmt: skip
    props = dict(event["props"])
    assert props.pop("seconds") >= 0
    assert props == {
        "file": "people.csv", "format": "csv", "mode": "merge", "rows": 3, "created": 2,
        "updated": 0, "unchanged": 0, "skipped": 0, "rejected": 1,
    }  # fmt: skip
