"""The ``relove`` command line (Typer + Rich). Commands are thin: they call the services.

Errors end with one clear line on stderr and a non-zero exit code, never a traceback:
1 for product errors, 2 for usage errors and bad filters.
"""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import SQLAlchemyError

from relove.cli import admins, broadcast, db, users
from relove.cli import automations as automations_cli
from relove.cli import conversation as conversation_cli
from relove.cli import event_stats as event_stats_cli
from relove.cli import events as events_cli
from relove.cli import sandbox as sandbox_cli
from relove.cli import segments as segments_cli
from relove.cli import serve as serve_cli
from relove.cli import stats as stats_cli
from relove.cli import tokens as tokens_cli
from relove.cli import webhook as webhook_cli
from relove.cli import webhooks as webhooks_cli
from relove.cli.common import err_console, markup_line
from relove.cli.run import run_bot
from relove.errors import FilterError, ReloveError

app = typer.Typer(
    name="relove",
    help="relove: a Telegram communication bot and audience platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command(
    "run", help="Run the bot (long polling; --webhook: webhook server with a durable inbox).",
    epilog="Guides: docs/bot.md, docs/deployment.md",
)(run_bot)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(broadcast.app, name="broadcast")
app.command(
    "worker", help="Send scheduled and started broadcasts (alongside `relove run`).",
    epilog="Guides: docs/broadcasts.md, docs/automations.md, docs/operations.md",
)(broadcast.worker)
app.add_typer(segments_cli.app, name="segment")
app.add_typer(stats_cli.app, name="stats")
app.add_typer(conversation_cli.app, name="conversation")
app.add_typer(events_cli.app, name="events")
event_stats_cli.register(stats_cli.app)
app.command("sandbox", help=sandbox_cli.SANDBOX_HELP, epilog="Guide: docs/sandbox.md")(
    sandbox_cli.sandbox
)
app.command("demo", help=sandbox_cli.DEMO_HELP, epilog="Guide: docs/sandbox.md")(sandbox_cli.demo)
app.command(
    "serve", help="Serve the REST API (and the console) over HTTP.",
    epilog="Guides: docs/api.md, docs/console.md, docs/deployment.md",
)(serve_cli.serve)
app.add_typer(tokens_cli.app, name="tokens")
app.add_typer(admins.app, name="admins")
app.add_typer(admins.console_app, name="console")
app.add_typer(automations_cli.app, name="automations")
app.add_typer(webhooks_cli.app, name="webhooks")
app.add_typer(webhook_cli.app, name="webhook")


def _fail(message: str, code: int) -> int:
    err_console.print(markup_line("[red]error:[/red] {message}", message=message))
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and, as a console script, exits with) the exit code."""
    try:
        app(args=argv, prog_name="relove")  # usage errors: Typer prints them, exit code 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except FilterError as e:
        return _fail(str(e), 2)
    except ReloveError as e:
        return _fail(str(e), 1)
    except (SQLAlchemyError, OSError) as e:
        detail = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        return _fail(f"database error: {detail}", 1)
    except KeyboardInterrupt:
        return 130
    return 0


def entry() -> None:
    sys.exit(main())
