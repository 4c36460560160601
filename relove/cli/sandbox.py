"""`relove sandbox` (the local Bot API + web chat) and `relove demo` (sandbox + bot + data)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer

from relove.cli.common import console, markup_line, run, settings
from relove.errors import ConfigError

SANDBOX_HELP = "Serve the local Telegram Bot API emulator and its web chat."
DEMO_HELP = "Start the sandbox, seed a demo database and run the bot against it."
DEMO_DB = Path("relove-demo.db")
#: the login link `relove demo` prints stays valid this long (one use)
DEMO_LINK_MINUTES = 60


def _limits(**values: float | bool | None) -> dict[str, float | bool]:
    return {k: v for k, v in values.items() if v is not None}


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _print_urls(url: str, token_hint: str | None = None) -> None:
    console.print(markup_line("[bold]Web chat[/bold]     {url}/", url=url))
    console.print(markup_line("[bold]Bot API[/bold]      {url}/bot<token>/<method>"
                              "   (RELOVE_TELEGRAM_API_URL={url})", url=url))  # fmt: skip
    console.print(markup_line("[bold]Control API[/bold]  {url}/api/  (see docs/sandbox.md)",
                              url=url))  # fmt: skip
    if token_hint:
        console.print(markup_line("[bold]Bot token[/bold]    {token}", token=token_hint))


def sandbox(
    host: str = typer.Option(
        None, help="Interface to listen on (default: RELOVE_SANDBOX_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, min=0, max=65535,
                             help="Port (default: RELOVE_SANDBOX_PORT, 8081)."),
    token: str = typer.Option(None, help="Accept only this bot token (default: any)."),
    rate: float = typer.Option(None, help="Messages per second per bot [30]."),
    burst: float = typer.Option(None, help="Burst of the per-bot limit [30]."),
    paid_rate: float = typer.Option(None, help="Messages/s with allow_paid_broadcast [1000]."),
    per_chat: float = typer.Option(None, help="Messages per second to one chat [1]."),
    per_chat_burst: float = typer.Option(None, help="Burst allowed in one chat [3]."),
    per_group_minute: float = typer.Option(None, help="Messages per minute to a group [20]."),
    no_limits: bool = typer.Option(False, "--no-limits", help="Disable flood limits."),
    fault_5xx: float = typer.Option(None, help="Share of calls answered with 5xx (0..1)."),
    fault_drop: float = typer.Option(None, help="Share of calls whose connection drops (0..1)."),
    allow_host: list[str] = typer.Option(
        None, "--allow-host", metavar="NAME",
        help="Also answer requests for this host name or address (repeatable; loopback names "
             "always work; default: RELOVE_SANDBOX_ALLOWED_HOSTS)."),
) -> None:
    """Serve the Bot API emulator on 127.0.0.1:8081 until Ctrl+C."""
    from relove.sandbox.core import SandboxConfig
    from relove.sandbox.server import running_sandbox

    s = settings()
    config = SandboxConfig(host=host or s.sandbox_host,
                           port=s.sandbox_port if port is None else port, token=token,
                           allowed_hosts=(*s.sandbox_allowed_hosts, *(allow_host or ())))
    try:
        config.limits.update(_limits(rate=rate, burst=burst, paid_rate=paid_rate,
                                     per_chat=per_chat, per_chat_burst=per_chat_burst,
                                     per_group_minute=per_group_minute, fault_5xx=fault_5xx,
                                     fault_drop=fault_drop))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    config.limits.enabled = not no_limits

    async def _serve() -> None:
        async with running_sandbox(config) as sb:
            assert sb.url
            _print_urls(sb.url)
            console.print("Ctrl+C to stop.")
            await _until_signal()

    run(_serve())


def demo(
    users: int = typer.Option(300, min=0, max=100_000, help="How many users to seed."),
    db: Path = typer.Option(DEMO_DB, help="SQLite file, recreated on each run."),  # noqa: B008
    host: str = typer.Option(None, help="Sandbox interface (default: RELOVE_SANDBOX_HOST)."),
    port: int = typer.Option(None, min=0, max=65535,
                             help="Sandbox port (default: RELOVE_SANDBOX_PORT, 8081)."),
    seed: int = typer.Option(7, help="Random seed of the generated data."),
    console_port: int = typer.Option(8080, min=0, max=65535,
                                     help="Port of the operator console (0: a free port)."),
) -> None:
    """Sandbox + bot + operator console on a fresh SQLite database with a few hundred
    realistic users."""
    from relove.admins.login import create_login_token, login_url
    from relove.api.app import create_app
    from relove.bot.factory import close_bot, create_bot, create_dispatcher
    from relove.bot.polling import poll
    from relove.cli.common import open_db
    from relove.config import load_settings
    from relove.conversation.components import build_components
    from relove.conversation.examples import EXAMPLES_DIR
    from relove.sandbox.core import DEFAULT_TOKEN, SandboxConfig
    from relove.sandbox.demo import OPERATOR, add_to_sandbox, reset_sqlite_file, seed_database
    from relove.sandbox.server import running_sandbox
    from relove.web.app import console_mount
    from relove.web.serve import address_of, bind, serving

    base = settings()
    config = SandboxConfig(host=host or base.sandbox_host,
                           port=base.sandbox_port if port is None else port, token=DEFAULT_TOKEN,
                           allowed_hosts=tuple(base.sandbox_allowed_hosts))

    db_url = f"sqlite+aiosqlite:///{db.resolve()}"

    async def _demo() -> None:
        reset_sqlite_file(db)
        console_sock = bind(config.host, console_port)
        console_url = address_of(console_sock)
        async with running_sandbox(config) as sb:
            assert sb.url
            s = load_settings(bot_token=DEFAULT_TOKEN, telegram_api_url=sb.url,
                              console_url=console_url,
                              database_url=db_url,
                              admin_ids=sorted({*base.admin_ids, OPERATOR["id"]}),
                              # the shipped onboarding flow and catalog, unless you name yours
                              scenarios_file=base.scenarios_file or EXAMPLES_DIR / "scenarios.yaml",
                              catalog_file=base.catalog_file or EXAMPLES_DIR / "catalog.yaml")
            async with open_db(s, auto_upgrade=True) as (engine, sessions):
                people = await seed_database(engine, users, seed=seed)
                add_to_sandbox(sb, people)
                bot = create_bot(s)
                try:
                    me = await bot.get_me()
                    conversation = build_components(s, sessions, strict=True)
                    dp = create_dispatcher(
                        s, engine, session_factory=sessions, conversation=conversation
                    )
                    ready = "[green]Demo ready:[/green] @{bot}, {n} users in {db}"
                    console.print(markup_line(ready, bot=me.username, n=len(people), db=db))
                    _print_urls(sb.url, DEFAULT_TOKEN)
                    app = create_app(s, engine, sessions, mounts=[console_mount(
                        s, sessions, scenarios=conversation.scenarios,
                        catalog=conversation.catalog)])
                    async with serving(app, console_sock):
                        async with sessions.begin() as session:
                            token = await create_login_token(session, OPERATOR["id"],
                                                             minutes=DEMO_LINK_MINUTES)
                        console.print(markup_line(
                            "[bold]Console[/bold]      {url}/   (REST API: {url}/api/v1/docs)",
                            url=console_url))
                        console.print(markup_line(
                            "[bold]Log in[/bold]       {link}   (one use, {minutes} min; later: "
                            "/login in the web chat as the operator)",
                            link=login_url(console_url, token), minutes=DEMO_LINK_MINUTES),
                            highlight=False)
                        console.print(markup_line(
                            "Open the web chat, pick “{name}” (an admin) or any user, and send "
                            "/start. Ctrl+C to stop.", name=OPERATOR["first_name"]))
                        await poll(bot, dp)
                finally:
                    await close_bot(bot)

    run(_demo())
