"""`relove users find/count`, `relove segment …`, `relove stats …` end to end, on every backend."""

from __future__ import annotations

import csv
import io
import json

import pytest

from relove.cli import main
from relove.db.models import User


@pytest.fixture
async def cli_db(session_factory, database_url, monkeypatch):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    async with session_factory.begin() as s:
        s.add_all(
            [
                User(id=1, username="ivan", first_name="Анна",
                     markers={"city": "Москва", "VIP": True, "interests": ["yoga", "art"],
                              "source": "ads"}),
                User(id=2, username="petr", gender="male",
                     markers={"city": "Тверь", "interests": ["yoga"], "source": "instagram"}),
                User(id=3, is_active=False, markers={"interests": "yoga"}),
            ]
        )  # fmt: skip
    return database_url


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_find_count_json_and_csv(cli_db, capsys):
    code, out, _ = _run(
        capsys, "users", "find", 'interests contains "yoga"', "--json", "--limit", "1"
    )
    assert code == 0
    data = json.loads(out)
    assert data["count"] == 3 and [u["id"] for u in data["users"]] == [1]
    code, out, _ = _run(capsys, "users", "find", "city exists", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["id"] for r in rows] == ["1", "2"]
    assert json.loads(rows[0]["markers"])["city"] == "Москва"
    code, out, _ = _run(capsys, "users", "find", 'first_name icontains "АН"')
    assert code == 0 and "@ivan" in out and "1 users match" in out
    assert _run(capsys, "users", "count", "VIP")[1].strip() == "1"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["users", "find", 'city like "x"'], "unknown operator 'like' at position 6"),
        (["users", "count", 'last_seen_at > "abc"'], "position 16"),
        (["users", "find", 'city = "Москва'], "unclosed string"),
        (["stats", "breakdown", "markers"], "needs a key"),
        (["users", "count", 'segment:"nope"'], "unknown segment"),
    ],
)
def test_bad_filters_exit_2_with_one_line(cli_db, capsys, argv, fragment):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_segment_lifecycle(cli_db, capsys):
    code, out, _ = _run(capsys, "segment", "save", "moscow", 'city = "Москва"', "-d", "Москвичи")
    assert code == 0 and "1 users match" in out
    code, out, _ = _run(capsys, "segment", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["moscow"]
    code, out, _ = _run(capsys, "segment", "show", "moscow", "--json")
    shown = json.loads(out)
    assert (shown["filter"], shown["count"], shown["description"]) == ('city = "Москва"', 1,
                                                                       "Москвичи")
    assert _run(capsys, "users", "count", 'segment:"moscow" or city = "Тверь"')[1].strip() == "2"
    assert _run(capsys, "segment", "delete", "moscow")[0] == 0
    code, _, err = _run(capsys, "segment", "show", "moscow")
    assert code == 1 and "not found" in err


def test_stats_overview_and_breakdown(cli_db, capsys):
    code, out, _ = _run(capsys, "stats", "--json")
    data = json.loads(out)
    assert code == 0 and (data["total"], data["active"], data["inactive"]) == (3, 2, 1)
    assert {r["value"] for r in data["by_source"]["rows"]} == {"ads", "instagram"}
    code, out, _ = _run(capsys, "stats")
    assert code == 0 and "MAU" in out and "instagram" in out
    code, out, _ = _run(capsys, "stats", "breakdown", "interests", "--json")
    b = json.loads(out)
    assert {r["value"]: r["count"] for r in b["rows"]} == {"yoga": 3, "art": 1}
    code, out, _ = _run(capsys, "stats", "breakdown", "city", "--filter", "is_active", "--top", "1")
    assert code == 0 and "(other: 1 values)" in out


@pytest.fixture
async def tracked_db(cli_db, session_factory):
    from relove.events.record import record

    async with session_factory.begin() as s:
        for _ in range(2):
            await record(s, 2, "message.received", {"chat": 1}, source="bot")
        await record(s, 1, "command.used", {"command": "start"}, source="bot")
    return cli_db


def test_users_find_and_segment_save_take_did(tracked_db, capsys):
    code, out, _ = _run(capsys, "users", "find", 'did "message.received" >= 2 times within 7d',
                        "--json")  # fmt: skip
    assert code == 0 and [u["id"] for u in json.loads(out)["users"]] == [2]
    code, out, _ = _run(capsys, "segment", "save", "silent",
                        'not did "command.used" where command = "start"')  # fmt: skip
    assert code == 0 and "2 users match" in out
    code, out, err = _run(capsys, "users", "count", 'did "message.received" within 0d')
    assert code == 2 and "at most 3650d" in err and len(err.strip().splitlines()) == 1
