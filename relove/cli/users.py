"""`relove users …`: look at and edit users from the shell."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import func, select

from relove.cli.bulk import export_command, import_command
from relove.cli.common import cli_actor, console, open_db, print_json, run, settings
from relove.cli.events import history as events_history
from relove.cli.segments import find as find_users_command
from relove.db.models import User
from relove.users import service
from relove.users.lifecycle import get_user
from relove.users.paths import Document, parse_assignment, parse_path

app = typer.Typer(help="Look at and edit users.", no_args_is_help=True,
                  epilog="Guides: docs/markers.md, docs/bulk.md (import, export)")

ContextOpt = Annotated[
    bool, typer.Option("--context", help="Work on the context document instead of markers.")
]


@app.command()
def show(user_id: int) -> None:
    """Print all fields of a user as JSON."""

    async def _show() -> dict:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return (await get_user(session, user_id)).to_dict()

    print_json(run(_show()))


@app.command("set")
def set_(
    user_id: int,
    assignments: Annotated[list[str], typer.Argument(help="key=value … (values parsed as JSON)")],
    context: ContextOpt = False,
) -> None:
    """Set keys (dotted paths reach nested objects); a value is JSON when it parses, else text."""
    values = dict(parse_assignment(item) for item in assignments)

    async def _set() -> dict:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            doc: Document = "context" if context else "markers"
            return await service.set_values(
                session, user_id, values, doc=doc, source="cli", actor=cli_actor()
            )

    print_json(run(_set()))


@app.command()
def unset(
    user_id: int,
    keys: Annotated[list[str], typer.Argument(help="keys to remove (dotted paths allowed)")],
    context: ContextOpt = False,
) -> None:
    """Remove keys."""
    for key in keys:
        parse_path(key)

    async def _unset() -> dict:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            doc: Document = "context" if context else "markers"
            return await service.unset(
                session, user_id, keys, doc=doc, source="cli", actor=cli_actor()
            )

    print_json(run(_unset()))


@app.command()
def count(
    filter_text: Annotated[
        str | None, typer.Argument(metavar="[FILTER]", help="Count only users matching FILTER.")
    ] = None,
) -> None:
    """Count users (all, or those matching a filter)."""

    async def _count() -> int:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            if filter_text is None:
                return (await session.execute(select(func.count()).select_from(User))).scalar_one()
            from relove.segments import count_users

            return await count_users(session, filter_text)

    console.print(run(_count()))


app.command("find")(find_users_command)
app.command("history")(events_history)
app.command("import")(import_command)
app.command("export")(export_command)
