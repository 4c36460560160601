"""Schema migrations (Alembic), driven from the product's own engine.

Alembic is imported only when a migration runs or the exact head is needed: a process whose
schema is current (``relove worker``, ``relove run``) checks ``alembic_version`` with one plain
SELECT against the revisions named in the migration files, and never loads Alembic (its memory:
docs/benchmarks.md, Broadcasts).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _declared_head() -> str | None:
    """The head as the migration files declare it (``revision`` / ``down_revision``), read
    without Alembic; None when that is not one clear answer (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            value: ast.expr | None
            if isinstance(node, ast.Assign) and node.targets:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                if value is None:  # a bare annotation: no value to read
                    return None
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, parent = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(parent, str):
            parents.add(parent)
        elif parent is not None:  # a merge point (tuple): leave it to Alembic
            return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest)."""
    from alembic import command

    def _run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in ``alembic_version`` (None on an empty database)."""

    def _current(conn: Connection) -> str | None:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(rows) > 1:
            raise SchemaError(f"database schema has several heads: {', '.join(sorted(rows))}")
        return rows[0] if rows else None

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def ensure_schema(engine: AsyncEngine, *, auto_upgrade: bool) -> None:
    """Upgrade (SQLite default) or refuse an outdated schema with one clear line."""
    current = await current_revision(engine)
    if current is not None and current == _declared_head():
        return
    if auto_upgrade:
        await upgrade(engine)
        return
    head = head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}, expected {head}"
        raise SchemaError(f"database schema is {state}: run `relove db upgrade` first")
