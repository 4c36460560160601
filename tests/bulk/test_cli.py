"""`relove users import` / `relove users export` from the shell — on every backend."""

from __future__ import annotations

import json

import pytest

from relove.cli import main
from relove.db.models import User


@pytest.fixture
async def cli_db(session_factory, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    async with session_factory.begin() as s:
        s.add(User(id=42, first_name="Анна", markers={"city": "Казань"}))
    return database_url


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _users(capsys) -> dict[int, dict]:
    """Every user, read back through the CLI's own export."""
    code, out, err = _run(capsys, "users", "export", "--format", "jsonl")
    assert code == 0, err
    return {u["id"]: u for u in map(json.loads, out.splitlines())}


def test_import_prints_a_summary_and_writes_the_errors_file(cli_db, capsys, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "id;first_name;markers.city\n42;Анна;Москва\n7;[red]Bob[/red];[link=https://x]y[/link]\n"
        "oops;[/];x\n",
        encoding="cp1251",
    )
    code, out, err = _run(capsys, "users", "import", str(path), "--encoding", "cp1251")
    assert code == 0, err
    assert "created" in out and "rejected line 4: id 'oops'" in out
    assert f"{path}.errors.csv" in out
    errors = (tmp_path / "people.csv.errors.csv").read_text(encoding="cp1251").splitlines()
    assert errors == [
        "line,reason,id,first_name,markers.city",
        "4,id 'oops' is not a Telegram user id (a positive integer),oops,[/],x",
    ]
    users = _users(capsys)
    assert users[42]["markers"] == {"city": "Москва"}
    assert users[7]["first_name"] == "[red]Bob[/red]"

    # Fixed file: no rejections, and the stale errors file is gone.
    path.write_text("id,first_name\n42,Анна\n", encoding="utf-8")
    code, out, _ = _run(capsys, "users", "import", str(path), "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["unchanged"], summary["rejected"], summary["errors_file"]) == (1, 0, None)
    assert not (tmp_path / "people.csv.errors.csv").exists()


def test_dry_run_prints_data_as_text(cli_db, capsys, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": 7, "first_name": "[bold]x[/bold]", "markers": {"k": "[/]"}}\n'
        '{"id": 42, "markers.city": "[link=https://e.com]Москва[/link]"}\n',
        encoding="utf-8",
    )
    code, out, err = _run(capsys, "users", "import", str(path), "--dry-run")
    assert code == 0, err
    assert "Dry run" in out
    assert '"[bold]x[/bold]"' in out and '{"k":"[/]"}' in out
    assert '"[link=https://e.com]Москва[/link]"' in out
    assert not (tmp_path / "p.jsonl.errors.csv").exists()
    assert (_users(capsys))[42]["markers"] == {"city": "Казань"} and 7 not in _users(capsys)


@pytest.mark.parametrize(
    ("argv", "content", "message", "code"),
    [
        (["missing.csv"], None, "cannot read missing.csv", 1),
        (["f.csv", "--types", "score"], "id\n1\n", "--types expects key=type", 1),
        (["f.csv", "--types", "score=date"], "id\n1\n", "unknown type 'date'", 1),
        (["f.csv", "--types", "x=int"], "id\n1\n", "--types names markers.x, not a column", 1),
        (["f.csv"], "first_name\nBob\n", "no id column", 1),
        (["f.csv"], "id,x\n1,2\n", "unknown column 'x'", 1),
        (["f.csv", "--encoding", "klingon"], "id\n1\n", "unknown encoding 'klingon'", 1),
        (["f.csv", "--mode", "replace"], "id\n1\n", "Invalid value for '--mode'", 2),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli_db, capsys, tmp_path, argv, content, message, code
):
    if content is not None:
        (tmp_path / "f.csv").write_text(content, encoding="utf-8")
    got, out, err = _run(capsys, "users", "import", *argv)
    assert got == code
    assert message in err and "Traceback" not in err
    if code == 1:
        assert len(err.strip().splitlines()) == 1
    assert list(_users(capsys)) == [42]


def test_export_to_a_file_and_stdout(cli_db, capsys, tmp_path):
    code, out, err = _run(capsys, "users", "export", "--output", "out.jsonl")
    assert code == 0, err
    assert "exported 1 users to out.jsonl" in err
    assert json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))["first_name"] == "Анна"
    code, out, _ = _run(capsys, "users", "export", "--fields", "id,markers.city", "--bom")
    assert code == 0 and out == "\ufeffid,markers.city\n42,Казань\n"
    code, out, err = _run(capsys, "users", "export", "--filter", "city = ")
    assert code == 2 and "expected a value" in err and out == ""
    code, _, err = _run(capsys, "users", "export", "--fields", "id,nope", "-o", "x.csv")
    assert code == 1 and "unknown field 'nope'" in err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.part").exists()
