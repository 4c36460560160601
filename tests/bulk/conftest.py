"""Helpers for the bulk tests: import bytes, read users back."""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.bulk import ImportMode, ImportOptions, ImportSummary, import_rows, open_source
from relove.bulk.columns import ValueType
from relove.bulk.export import ExportOptions, export_users
from relove.db.models import User


class Errors:
    """An in-memory error sink."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, list[str]]] = []

    def add(self, line: int, reason: str, raw: list[str]) -> None:
        self.rows.append((line, reason, raw))

    @property
    def lines(self) -> dict[int, str]:
        return {line: reason for line, reason, _ in self.rows}


async def do_import(
    engine: AsyncEngine,
    data: bytes | str,
    *,
    format: str = "csv",
    mode: str = "merge",
    encoding: str | None = None,
    delimiter: str | None = None,
    types: dict[tuple[str, tuple[str, ...]], ValueType] | None = None,
    dry_run: bool = False,
    errors: Errors | None = None,
    batch_size: int = 10_000,
) -> ImportSummary:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    source = open_source(
        io.BytesIO(raw), format=format, size=len(raw), encoding=encoding,  # type: ignore[arg-type]
        delimiter=delimiter, types=types,
    )  # fmt: skip
    options = ImportOptions(mode=ImportMode(mode), dry_run=dry_run, batch_size=batch_size)
    return await import_rows(engine, source, options, errors=errors)


async def read_users(engine: AsyncEngine, *, with_times: bool = False) -> dict[int, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(User.__table__).order_by(User.id))).mappings().all()
    out = {}
    for r in rows:
        d = dict(r)
        d["gender"] = str(getattr(d["gender"], "value", d["gender"]))
        d["is_active"] = bool(d["is_active"])
        if not with_times:
            for k in ("created_at", "updated_at", "last_seen_at"):
                d.pop(k)
        out[d["id"]] = d
    return out


async def export_text(engine: AsyncEngine, **options: Any) -> str:
    return "".join([chunk async for chunk in export_users(engine, ExportOptions(**options))])
