"""`relove webhook set | info | delete`: the Telegram webhook of the bot.

Pending updates are kept unless ``--drop-pending-updates`` is given explicitly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from relove.cli.common import console, markup_line, plain, run, settings
from relove.errors import ConfigError, ReloveError

app = typer.Typer(help="Set, inspect or delete the Telegram webhook (webhook mode).",
                  no_args_is_help=True, epilog="Guide: docs/deployment.md")  # fmt: skip

DROP_HELP = "Also discard the updates Telegram holds for the bot (never done unless asked)."


def _allowed_updates() -> list[str]:
    from aiogram import Dispatcher

    from relove.bot.handlers import build_routers
    from relove.bot.polling import allowed_updates

    dp = Dispatcher()
    dp.include_routers(*build_routers())
    return allowed_updates(dp)


async def _call(method: Any) -> Any:
    from aiogram.exceptions import TelegramAPIError

    from relove.bot.factory import close_bot, create_bot

    bot = create_bot(settings())
    try:
        return await bot(method)
    except TelegramAPIError as e:
        raise ReloveError(f"Telegram refused: {e.message}") from None
    finally:
        await close_bot(bot)


@app.command("set")
def set_webhook(
    url: str = typer.Option(None, "--url", help="Public address (default RELOVE_WEBHOOK_URL)."),
    max_connections: int = typer.Option(
        None, "--max-connections", min=1, max=100,
        help="Connections Telegram may open at once (default RELOVE_WEBHOOK_MAX_CONNECTIONS).",
    ),
    drop_pending_updates: bool = typer.Option(False, "--drop-pending-updates", help=DROP_HELP),
) -> None:  # fmt: skip
    """Point Telegram at the webhook, with the secret and the update types the bot uses."""
    from aiogram.methods import SetWebhook

    s = settings()
    if url:
        from relove.config import load_settings

        s = load_settings(webhook_url=url)  # checked like the variable
    if not s.webhook_url:
        raise ConfigError("RELOVE_WEBHOOK_URL: set the public address (or give --url)")
    if s.webhook_secret is None:
        raise ConfigError("RELOVE_WEBHOOK_SECRET: set a secret for the webhook")
    method = SetWebhook(
        url=s.webhook_url,
        secret_token=s.webhook_secret.get_secret_value(),
        max_connections=max_connections or s.webhook_max_connections,
        allowed_updates=_allowed_updates(),
        drop_pending_updates=drop_pending_updates,
    )
    run(_call(method))
    console.print(markup_line("Webhook set to {url}" + (
        " (pending updates dropped)" if drop_pending_updates else ""), url=s.webhook_url))


@app.command("info")
def webhook_info() -> None:
    """What Telegram knows: the address, pending updates, the last delivery error."""
    from aiogram.methods import GetWebhookInfo

    info = run(_call(GetWebhookInfo()))
    rows: list[tuple[str, Any]] = [
        ("url", info.url or "(none: long polling)"),
        ("pending updates", info.pending_update_count),
        ("max connections", info.max_connections),
        ("allowed updates", ", ".join(info.allowed_updates or []) or None),
        ("ip address", info.ip_address),
    ]
    if info.last_error_date:
        when = _when(info.last_error_date)
        rows.append(("last error", f"{when}: {info.last_error_message}"))
    for name, value in rows:
        if value is not None:
            line = plain(f"{name}: ")
            line.append_text(plain(value))
            console.print(line)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("delete")
def delete_webhook(
    drop_pending_updates: bool = typer.Option(False, "--drop-pending-updates", help=DROP_HELP),
) -> None:
    """Remove the webhook (the bot can poll again); pending updates are kept unless asked."""
    from aiogram.methods import DeleteWebhook

    run(_call(DeleteWebhook(drop_pending_updates=drop_pending_updates)))
    console.print("Webhook deleted" + (" (pending updates dropped)"
                                       if drop_pending_updates else ""))  # fmt: skip
