"""`relove users show/set/unset/count`, `relove db …`, `relove run` refusals — on every backend."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from relove.cli import main
from relove.db.models import User


@pytest.fixture
async def cli_db(session_factory, database_url, monkeypatch):
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.delenv("RELOVE_BOT_TOKEN", raising=False)
    async with session_factory.begin() as s:
        s.add(User(id=42, username="anna", first_name="Анна", markers={"city": "Москва"}))
    return database_url


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_set_unset_count(cli_db, capsys):
    code, out, _ = _run(capsys, "users", "show", "42")
    assert code == 0
    shown = json.loads(out)
    assert shown["first_name"] == "Анна" and shown["markers"] == {"city": "Москва"}

    code, out, _ = _run(
        capsys, "users", "set", "42", "vip=true", "score=5", 'tags=["a","b"]', "note=hello world",
        "profile.age=30",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "city": "Москва", "vip": True, "score": 5, "tags": ["a", "b"], "note": "hello world",
        "profile": {"age": 30},
    }  # fmt: skip

    code, out, _ = _run(capsys, "users", "set", "42", "summary=любит йогу", "--context")
    assert code == 0 and json.loads(out)["summary"] == "любит йогу"

    code, out, _ = _run(capsys, "users", "unset", "42", "vip", "profile.age")
    assert code == 0
    markers = json.loads(out)
    assert "vip" not in markers and markers["profile"] == {}

    code, out, _ = _run(capsys, "users", "count")
    assert code == 0 and out.strip() == "1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "show", "7"], "user 7 not found"),
        (["users", "set", "7", "a=1"], "user 7 not found"),
        (["users", "set", "42", "novalue"], "expected key=value"),
        (["users", "set", "42", "=1"], "must not be empty"),
        (["users", "unset", "42", "bad\x01key"], "forbidden character"),
        (["users", "set", "42", f"big={'x' * 70_000}"], "size limit"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(cli_db, capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 1
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, _ = _run(capsys, "users", "show", "42")
    assert json.loads(out)["markers"] == {"city": "Москва"}


def test_usage_error_exits_2(cli_db, capsys):
    code, _, err = _run(capsys, "users", "show", "not-a-number")
    assert code == 2 and "Traceback" not in err


def test_run_without_token_refuses_in_one_line(cli_db, capsys):
    code, _, err = _run(capsys, "run")
    assert code == 1
    assert "RELOVE_BOT_TOKEN is not set" in err and "Traceback" not in err


def test_bad_setting_names_the_variable(cli_db, capsys, monkeypatch):
    monkeypatch.setenv("RELOVE_ADMIN_IDS", "12,abc")
    code, _, err = _run(capsys, "users", "count")
    assert code == 1 and "RELOVE_ADMIN_IDS" in err and "Traceback" not in err


def test_unreachable_database_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("RELOVE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    code, _, err = _run(capsys, "users", "count")
    assert code == 1 and "database error" in err and "Traceback" not in err


def test_fresh_sqlite_file_upgrades_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RELOVE_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    code, out, _ = _run(capsys, "users", "count")
    assert code == 0 and out.strip() == "0"


def test_outdated_postgresql_schema_is_refused(database_url, monkeypatch, capsys):
    """On PostgreSQL nothing upgrades by itself: an empty database is refused with a hint."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite upgrades itself (tested above)")
    url = make_url(database_url)
    empty = f"{url.database}_empty"

    async def _admin(sql: str) -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(_admin(f'CREATE DATABASE "{empty}"'))
    try:
        monkeypatch.setenv("RELOVE_DATABASE_URL", url.set(database=empty).render_as_string(False))
        code, _, err = _run(capsys, "users", "count")
        assert code == 1 and "relove db upgrade" in err

        code, out, _ = _run(capsys, "db", "upgrade")
        assert code == 0
        code, out, _ = _run(capsys, "users", "count")
        assert code == 0 and out.strip() == "0"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)'))
