"""`relove events track|prune` and `relove users history` (both databases)."""

from __future__ import annotations

import json

import pytest

from relove.cli import main
from relove.db.models import User


@pytest.fixture
async def cli_db(session_factory, database_url, monkeypatch):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    async with session_factory.begin() as s:
        s.add(User(id=42, first_name="Анна"))
    return database_url


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_track_then_history(cli_db, capsys):
    code, out, _ = _run(capsys, "events", "track", "42", "order.paid", "sum=1200",
                        "item=[b]x[/b]")  # fmt: skip
    assert code == 0 and "order.paid" in out
    code, _, _ = _run(capsys, "users", "set", "42", "city=Москва")
    assert code == 0
    code, out, _ = _run(capsys, "users", "history", "42", "--json")
    assert code == 0
    events = json.loads(out)["events"]
    assert [(e["name"], e["source"]) for e in events] == [
        ("marker.changed", "cli"), ("order.paid", "cli")]
    assert events[1]["props"] == {"sum": 1200, "item": "[b]x[/b]"}
    assert events[0]["actor"].startswith("cli:")
    # the table shows data as text, never as Rich markup
    code, out, _ = _run(capsys, "users", "history", "42", "--name", "order.*")
    assert code == 0 and '"item":"[b]x' in out and "marker.changed" not in out


def test_history_pages(cli_db, capsys):
    for i in range(3):
        assert _run(capsys, "events", "track", "42", "page.viewed", f"n={i}")[0] == 0
    code, out, _ = _run(capsys, "users", "history", "42", "--limit", "2", "--json")
    page = json.loads(out)
    assert [e["props"]["n"] for e in page["events"]] == [2, 1]
    code, out, _ = _run(capsys, "users", "history", "42", "--limit", "2", "--json",
                        "--cursor", page["next_cursor"])  # fmt: skip
    assert [e["props"]["n"] for e in json.loads(out)["events"]] == [0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "track", "42", "Bad Name"], "not object.action"),
        (["events", "track", "42", "a.b", "novalue"], "expected key=value"),
        (["events", "track", "42", "a.b", "x.y=1"], "flat"),
        (["events", "track", "42", "a.b", "--at", "yesterday"], "ISO"),
        (["events", "track", "42", "a.b", "--at", "2026-01-01T10:00:00"], "timezone"),
        (["events", "track", "42", "a.b", f"big={'x' * 9000}"], "limit"),
        (["users", "history", "42", "--cursor", "nope"], "invalid cursor"),
    ],
)
def test_bad_input_is_one_line_and_records_nothing(cli_db, capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 1 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, _ = _run(capsys, "users", "history", "42", "--json")
    assert json.loads(out)["events"] == []


def test_prune(cli_db, capsys):
    code, out, _ = _run(capsys, "events", "prune", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["messages_deleted"] == 0 and "events_cutoff" in report
    code, out, _ = _run(capsys, "events", "prune")
    assert code == 0 and "messages before" in out


def test_stats_funnel_retention_events(cli_db, capsys):
    for name in ("command.used", "button.pressed"):
        assert _run(capsys, "events", "track", "42", name)[0] == 0
    code, out, _ = _run(capsys, "stats", "funnel", "command.used", "button.pressed",
                        "order.paid", "--within", "1h", "--json")  # fmt: skip
    assert code == 0
    assert [s["users"] for s in json.loads(out)["steps"]] == [1, 1, 0]
    code, out, _ = _run(capsys, "stats", "retention", "--period", "day", "--cohorts", "2",
                        "--event", "command.used", "--json")  # fmt: skip
    assert code == 0
    cohorts = json.loads(out)["cohorts"]
    assert cohorts[-1]["users"] == 1 and cohorts[-1]["active"] == [1]
    code, out, _ = _run(capsys, "stats", "events", "--by", "week", "--json")
    assert code == 0
    assert {(c["name"], c["events"], c["users"]) for c in json.loads(out)} == {
        ("command.used", 1, 1), ("button.pressed", 1, 1)}
    code, out, _ = _run(capsys, "stats", "funnel", "command.used", "button.pressed")
    assert code == 0 and "100.0%" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["stats", "funnel", "a.b"], 1, "2 to 10 steps"),
        (["stats", "funnel", "a.b", "Bad"], 1, "not object.action"),
        (["stats", "funnel", "a.b", "c.d", "--within", "week"], 1, "duration"),
        (["stats", "funnel", "a.b", "c.d", "--filter", "city = "], 2, ""),
        (["stats", "retention", "--period", "year"], 2, "day, week or month"),
        (["stats", "events", "--by", "month"], 2, "day or week"),
    ],
)
def test_stats_bad_input(cli_db, capsys, argv, code, message):
    got, _, err = _run(capsys, *argv)
    assert got == code and message in err and "Traceback" not in err
