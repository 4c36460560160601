"""`relove webhook set | info | delete` against the sandbox Bot API: the secret and the bot's
update types are sent, pending updates are kept unless asked, bad settings end with one line."""

from __future__ import annotations

import asyncio

import pytest

from relove.cli import main
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import DEFAULT_TOKEN, Sandbox


@pytest.fixture
def webhook_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOVE_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("RELOVE_TELEGRAM_API_URL", str(sandbox.url))
    monkeypatch.setenv("RELOVE_WEBHOOK_URL", "https://bot.example.org/tg")
    monkeypatch.setenv("RELOVE_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("RELOVE_WEBHOOK_MAX_CONNECTIONS", "12")


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_set_inspect_and_delete_keep_pending_updates(
    webhook_env: None, sandbox: Sandbox, sandbox_client: SandboxClient,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    user = (await sandbox_client.create_user("Аня"))["id"]
    await sandbox_client.send(user, "waiting")  # Telegram holds it for the bot
    code, out, _ = await _cli(capsys, "webhook", "set")
    assert code == 0 and "https://bot.example.org/tg" in out
    hook = sandbox.updates.webhook
    assert hook is not None and hook["secret_token"] == "s3cret"
    assert hook["max_connections"] == 12
    assert "message" in (sandbox.updates.allowed_list or [])
    assert "my_chat_member" in (sandbox.updates.allowed_list or [])  # the touch sees blocks

    code, out, _ = await _cli(capsys, "webhook", "info")
    assert code == 0
    assert "url: https://bot.example.org/tg" in out and "pending updates: 1" in out

    code, out, _ = await _cli(capsys, "webhook", "delete")
    assert code == 0 and sandbox.updates.webhook is None
    assert sandbox.updates.webhook_info()["pending_update_count"] == 1
    code, out, _ = await _cli(capsys, "webhook", "delete", "--drop-pending-updates")
    assert code == 0 and "dropped" in out
    assert sandbox.updates.webhook_info()["pending_update_count"] == 0


async def test_bad_settings_end_with_one_line(
    webhook_env: None, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code, _, err = await _cli(capsys, "webhook", "set", "--url", "ftp://nowhere")
    assert code == 1 and "RELOVE_WEBHOOK_URL" in err and "Traceback" not in err
    monkeypatch.setenv("RELOVE_WEBHOOK_SECRET", "no spaces allowed")
    code, _, err = await _cli(capsys, "webhook", "set")
    assert code == 1 and "RELOVE_WEBHOOK_SECRET" in err and len(err.strip().splitlines()) == 1
    monkeypatch.delenv("RELOVE_WEBHOOK_SECRET")
    code, _, err = await _cli(capsys, "run", "--webhook")
    assert code == 1 and "RELOVE_WEBHOOK_SECRET" in err and len(err.strip().splitlines()) == 1
    assert sandbox.updates.webhook is None
