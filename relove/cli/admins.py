"""`relove admins …` (who may use the bot's admin commands and the console, with which role)
and `relove console link` (a one-time console login link for the shell user)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from relove.admins import login
from relove.admins import service as admins
from relove.cli.common import cli_actor, console, open_db, print_json, run, settings
from relove.errors import InvalidInput
from relove.events import record

app = typer.Typer(
    help="Admins and their roles (owner, operator, viewer); RELOVE_ADMIN_IDS are owners.",
    no_args_is_help=True,
    epilog="Guide: docs/console.md (roles)",
)
console_app = typer.Typer(help="The operator console (pages served by `relove serve`).",
                          no_args_is_help=True, epilog="Guide: docs/console.md")

RoleOpt = Annotated[str, typer.Option("--role", "-r", help="owner, operator or viewer.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


@app.command()
def add(
    user_id: int,
    role: RoleOpt = "operator",
    note: Annotated[str | None, typer.Option("--note", help="Who this is, for the others.")] = None,
) -> None:
    """Add an admin (or change the role of one)."""
    parsed = admins.parse_role(role)
    admins.check_admin_id(user_id)

    async def _add() -> None:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            await admins.add_admin(session, user_id, parsed, note=note)
            await record(session, None, "admin.added", {"admin_id": user_id, "role": parsed.value},
                         source="cli", actor=cli_actor())

    run(_add())
    console.print(f"{user_id} is now {parsed.value}", highlight=False, markup=False)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List admins: RELOVE_ADMIN_IDS (owners) first, then the others by role."""
    s = settings()

    async def _list() -> list[dict[str, Any]]:
        async with open_db(s) as (_, sessions), sessions() as session:
            return [
                {"id": a.id, "role": a.role.value, "configured": a.configured, "note": a.note,
                 "created_at": a.created_at.isoformat() if a.created_at else None}
                for a in await admins.list_admins(session, s)
            ]

    rows = run(_list())
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} admins", title_justify="left")
    for col in ("id", "role", "from", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["role"], "RELOVE_ADMIN_IDS" if r["configured"] else "table",
                      Text(r["note"] or ""))  # data: shown as text, never as markup
    console.print(table)


@app.command()
def remove(user_id: int) -> None:
    """Remove an admin; their console sessions end at once."""
    s = settings()

    async def _remove() -> None:
        async with open_db(s) as (_, sessions), sessions.begin() as session:
            await admins.remove_admin(session, s, user_id)
            await record(session, None, "admin.removed", {"admin_id": user_id}, source="cli",
                         actor=cli_actor())

    run(_remove())
    console.print(f"{user_id} is no longer an admin", highlight=False, markup=False)


@console_app.command()
def link(
    admin: Annotated[int, typer.Option("--admin", help="Telegram id of the admin to log in.")],
) -> None:
    """Print a one-time console login link (valid RELOVE_CONSOLE_LOGIN_MINUTES, single use)."""
    s = settings()

    async def _link() -> str:
        async with open_db(s) as (_, sessions), sessions.begin() as session:
            if await admins.role_of(session, s, admin) is None:
                raise InvalidInput(
                    f"{admin} is not an admin: add it with `relove admins add {admin} --role …`"
                )
            return await login.create_login_token(session, admin,
                                                  minutes=s.console_login_minutes)

    token = run(_link())
    console.print(login.login_url(s.console_base_url, token), highlight=False, markup=False,
                  soft_wrap=True)
