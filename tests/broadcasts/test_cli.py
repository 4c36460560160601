"""`relove broadcast …` from the shell, on both databases."""

from __future__ import annotations

import asyncio
import json

import pytest

from relove.cli import main
from relove.sandbox.core import DEFAULT_TOKEN
from tests.broadcasts.conftest import seed_users


@pytest.fixture
def cli(database_url, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RELOVE_DATABASE_URL", database_url)
    monkeypatch.setenv("RELOVE_LOG_LEVEL", "WARNING")

    async def invoke(*argv: str) -> int:
        return await asyncio.to_thread(main, list(argv))

    return invoke


async def test_create_preview_start_status_cancel(db, sandbox_client, cli, capsys) -> None:
    await seed_users(db, sandbox_client, 4)
    code = await cli("broadcast", "create", "--name", "Суббота", "--filter", "city = 'Москва'",
                     "--text", "Привет, <b>{{ user.first_name }}</b>!",
                     "--button", "Сайт|https://example.org")
    out = capsys.readouterr().out
    assert code == 0, out
    broadcast_id = int(out.split()[1])
    assert "4 recipients" in out

    assert await cli("broadcast", "preview", str(broadcast_id)) == 0
    out = capsys.readouterr().out
    assert "recipients: 4" in out and "Привет, <b>User10000</b>!" in out
    assert "Сайт → https://example.org" in out

    assert await cli("broadcast", "list") == 0
    assert "Суббота" in capsys.readouterr().out

    assert await cli("broadcast", "start", str(broadcast_id)) == 0
    assert "4 recipients" in capsys.readouterr().out
    assert await cli("broadcast", "status", str(broadcast_id), "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["status"] == "running" and stats["targeted"] == 4 and stats["pending"] == 4

    assert await cli("broadcast", "pause", str(broadcast_id)) == 0
    assert await cli("broadcast", "pause", str(broadcast_id)) == 1
    err = capsys.readouterr().err
    assert "is paused; cannot pause" in err and "Traceback" not in err
    assert await cli("broadcast", "cancel", str(broadcast_id)) == 0


async def test_bad_input_is_one_line(db, cli, capsys) -> None:
    code = await cli("broadcast", "create", "--name", "x", "--filter", "city = = 1", "--text", "t")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    code = await cli("broadcast", "create", "--name", "x", "--filter", "city = 'a'",
                     "--text", "{% if %}")
    err = capsys.readouterr().err
    assert code == 1 and "template error" in err and len(err.strip().splitlines()) == 1
    code = await cli("broadcast", "create", "--name", "x", "--filter", "city = 'a'",
                     "--text", "<b>unclosed")
    assert code == 1 and "not valid Telegram HTML" in capsys.readouterr().err
    code = await cli("broadcast", "create", "--name", "x", "--filter", "city = 'a'",
                     "--text", "t", "--button", "no-url")
    assert code == 1 and "label|url" in capsys.readouterr().err
    assert await cli("broadcast", "status", "999") == 1
    assert "not found" in capsys.readouterr().err


async def test_scheduled_broadcast_runs_when_due(db, cli, capsys) -> None:
    code = await cli("broadcast", "create", "--name", "later", "--filter", "city = 'a'",
                     "--text", "t", "--at", "2020-01-01T10:00+03:00")
    assert code == 0 and "(scheduled)" in capsys.readouterr().out
    code = await cli("broadcast", "create", "--name", "x", "--filter", "city = 'a'",
                     "--text", "t", "--at", "2020-01-01T10:00")
    assert code == 1 and "timezone" in capsys.readouterr().err

async def test_test_send_reaches_the_admins_and_fails_when_one_is_missed(
    db, sandbox, sandbox_client, cli, capsys, monkeypatch
) -> None:
    await sandbox_client.create_users([{"id": 4242, "first_name": "Админ", "started": True},
                                       {"id": 4343, "first_name": "Гость"}])  # never started
    monkeypatch.setenv("RELOVE_TELEGRAM_API_URL", sandbox.url)
    monkeypatch.setenv("RELOVE_BOT_TOKEN", DEFAULT_TOKEN)
    code = await cli("broadcast", "create", "--name", "t", "--filter", "city = 'Москва'",
                     "--text", "Привет, {{ user.first_name or 'друг' }}!")
    out = capsys.readouterr().out
    assert code == 0, out
    broadcast_id = out.split()[1]

    monkeypatch.setenv("RELOVE_ADMIN_IDS", "4242")
    assert await cli("broadcast", "test", broadcast_id) == 0
    assert "4242: sent" in capsys.readouterr().out
    assert [m["text"] for m in await sandbox_client.messages(4242)] == ["Привет, друг!"]

    # an admin who never started the bot: the line says why, and the exit code says it failed
    monkeypatch.setenv("RELOVE_ADMIN_IDS", "4242,4343")
    assert await cli("broadcast", "test", broadcast_id) == 1
    out = capsys.readouterr().out
    assert "4242: sent" in out and "4343: not sent" in out
    assert len(await sandbox_client.messages(4242)) == 2
