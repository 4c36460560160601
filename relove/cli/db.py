"""`relove db …`: schema migrations."""

from __future__ import annotations

import typer

from relove.cli.common import console, run, settings
from relove.db.engine import create_engine, display_url
from relove.db.migrate import current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True,
                  epilog="Guide: docs/operations.md")


@app.command("upgrade")
def upgrade_cmd() -> None:
    """Create or upgrade the schema to the newest revision."""
    s = settings()

    async def _upgrade() -> str | None:
        engine = create_engine(s.database_url)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = run(_upgrade())
    console.print(f"{display_url(s.database_url)} is at revision {revision}")


@app.command()
def status() -> None:
    """Show the schema revision of the database and the newest one."""
    s = settings()

    async def _current() -> str | None:
        engine = create_engine(s.database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    current = run(_current())
    console.print(f"database: {display_url(s.database_url)}")
    console.print(f"current revision: {current or 'none'}; newest: {head_revision()}")
