"""Admins and roles, login tokens (service and CLI) — on every backend."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from relove.admins import login
from relove.admins.models import Role
from relove.admins.service import add_admin, list_admins, remove_admin, role_of
from relove.cli import main
from relove.config import Settings
from relove.db.engine import create_engine, create_session_factory
from relove.errors import InvalidInput, NotFound
from relove.events.models import Event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(admin_ids=[1], _env_file=None)


async def test_roles_and_configured_owners(session_factory) -> None:
    async with session_factory.begin() as s:
        await add_admin(s, 2, "operator", note="Оля")
        await add_admin(s, 3, Role.viewer)
        await add_admin(s, 1, Role.viewer)  # a configured owner stays an owner
        with pytest.raises(InvalidInput):
            await add_admin(s, 4, "admin")
        with pytest.raises(InvalidInput):
            await add_admin(s, 0, "viewer")
    async with session_factory() as s:
        assert await role_of(s, SETTINGS, 1) is Role.owner
        assert await role_of(s, SETTINGS, 2) is Role.operator
        assert await role_of(s, SETTINGS, 5) is None
        listed = [(a.id, a.role.value, a.configured) for a in await list_admins(s, SETTINGS)]
    assert listed == [(1, "owner", True), (2, "operator", False), (3, "viewer", False)]
    async with session_factory.begin() as s:
        with pytest.raises(InvalidInput):
            await remove_admin(s, SETTINGS, 1)
        with pytest.raises(NotFound):
            await remove_admin(s, SETTINGS, 9)
        await remove_admin(s, SETTINGS, 3)
    async with session_factory() as s:
        assert await role_of(s, SETTINGS, 3) is None
    assert Role.owner.allows(Role.operator) and not Role.viewer.allows(Role.operator)


async def test_login_token_is_single_use_and_expires(session_factory) -> None:
    async with session_factory.begin() as s:
        token = await login.create_login_token(s, 2, now=NOW)
        stale = await login.create_login_token(s, 2, now=NOW - timedelta(minutes=6))
    async with session_factory.begin() as s:
        assert await login.consume_login_token(s, token, now=NOW) == 2
    for used in (token, stale, "nonsense", ""):
        async with session_factory.begin() as s:
            with pytest.raises(login.LoginRefused):
                await login.consume_login_token(s, used, now=NOW)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _in_db(database_url: str, work):  # noqa: ANN001 - a coroutine function of a session
    async def go():  # noqa: ANN202
        engine = create_engine(database_url)
        try:
            async with create_session_factory(engine).begin() as s:
                return await work(s)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_cli_admins_and_console_link(db, database_url, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_ADMIN_IDS", "1")
    monkeypatch.setenv("RELOVE_CONSOLE_URL", "https://ops.example")
    code, out, _ = _run(capsys, "admins", "add", "77", "--role", "viewer", "--note", "[b]Оля[/b]")
    assert code == 0 and "77 is now viewer" in out
    code, out, _ = _run(capsys, "admins", "list")
    assert code == 0 and "[b]Оля[/b]" in out and "RELOVE_ADMIN_IDS" in out  # data as text
    code, out, _ = _run(capsys, "admins", "list", "--json")
    assert [(a["id"], a["role"]) for a in json.loads(out)] == [
        (1, "owner"), (77, "viewer")]
    code, out, _ = _run(capsys, "console", "link", "--admin", "77")
    assert code == 0
    match = re.fullmatch(r"https://ops\.example/auth/link/([\w-]+)\n", out)
    assert match is not None
    token = match.group(1)
    assert _in_db(database_url, lambda s: login.consume_login_token(s, token)) == 77
    code, _, err = _run(capsys, "console", "link", "--admin", "5")
    assert code == 1 and "5 is not an admin" in err and "Traceback" not in err
    code, _, err = _run(capsys, "admins", "add", "5", "--role", "god")
    assert code == 1 and "unknown role" in err
    code, out, _ = _run(capsys, "admins", "remove", "77")
    assert code == 0
    code, _, err = _run(capsys, "admins", "remove", "1")
    assert code == 1 and "RELOVE_ADMIN_IDS" in err

    async def cli_events(s):  # noqa: ANN001, ANN202
        return (await s.execute(select(Event.name).where(Event.source == "cli")
                                .order_by(Event.id))).scalars().all()

    assert _in_db(database_url, cli_events) == ["admin.added", "admin.removed"]
