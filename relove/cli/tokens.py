"""`relove tokens create|list|revoke`: API tokens for integrations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from relove.api.models import ApiToken
from relove.api.tokens import SCOPES, create_token, list_tokens, revoke_token
from relove.cli.common import cli_actor, console, err_console, open_db, print_json, run, settings

app = typer.Typer(help="API tokens for the REST API (`relove serve`).", no_args_is_help=True,
                  epilog="Guide: docs/api.md")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="Who uses it, e.g. crm.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help=f"Comma-separated: {', '.join(SCOPES)}; x:* for all x.")
    ],
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="Requests/s (default: settings).")
    ] = None,
    burst: Annotated[int | None, typer.Option("--burst", min=1, help="Burst size.")] = None,
) -> None:
    """Create a token and print it ONCE (only its hash is stored)."""

    async def _create() -> tuple[ApiToken, str]:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            return await create_token(
                session, name, scopes, rate_limit=rate, rate_burst=burst, created_by=cli_actor()
            )

    row, token = run(_create())
    err_console.print(
        f"token {row.name} ({row.key_id}) with scopes {' '.join(row.scope_list)}; "
        "store it now, it is not shown again:", markup=False, highlight=False,
    )
    console.print(token, markup=False, highlight=False)


@app.command("list")
def list_(
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked tokens.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never the tokens themselves)."""

    async def _list() -> list[dict[str, object]]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return [t.to_dict() for t in await list_tokens(session, revoked=revoked)]

    rows = run(_list())
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"API tokens: {len(rows)}", title_justify="left")
    for column in ("name", "key id", "scopes", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")
    for r in rows:
        scopes = r["scopes"] if isinstance(r["scopes"], list) else []
        cells = (r["name"], r["key_id"], " ".join(scopes), r["created_at"] or "",
                 r["last_used_at"] or "never", r["revoked_at"] or "")  # fmt: skip
        table.add_row(*(Text(str(c)) for c in cells))  # data is text, never Rich markup
    console.print(table)


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name or key id.")],
) -> None:
    """Revoke a token: requests with it get 401 (within RELOVE_API_TOKEN_CACHE_SECONDS)."""

    async def _revoke() -> ApiToken:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            return await revoke_token(session, name)

    row = run(_revoke())
    console.print(f"revoked {row.name} ({row.key_id})", markup=False, highlight=False)
