"""PostgreSQL: COPY a batch into a temporary staging table, then ONE set-based upsert.

``INSERT … SELECT FROM staging ON CONFLICT (id) DO UPDATE … WHERE <changed>``: new users are
inserted; for an existing user the new values are computed from the row as the upsert locks it
(``users.markers || staged keys``, dotted paths with ``jsonb_set``), so a concurrent touch or
marker write is never lost, and the row is written only when something differs (no
``updated_at`` churn on a re-import). ``create`` and ``markers-only`` are the insert and the
update halves on their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from relove.bulk.base import BatchCounts, BatchShape, BatchStore, ImportMode, deep_ops, dump
from relove.bulk.rows import DocChange, ImportRow
from relove.db.types import UTCDateTime

STAGE = "relove_bulk_stage"
_COLUMNS = [
    "id", "given", "username", "first_name", "last_name", "gender", "is_active",
    "markers_top", "markers_ops", "context_top", "context_ops",
]  # fmt: skip
_CREATE_STAGE = f"""CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (
    id bigint PRIMARY KEY, given integer NOT NULL, username text, first_name text,
    last_name text, gender text, is_active boolean,
    markers_top jsonb, markers_ops jsonb, context_top jsonb, context_ops jsonb
) ON COMMIT DELETE ROWS"""

_FIELDS = ("username", "first_name", "last_name", "gender", "is_active")


def _encode_doc(change: DocChange | None) -> tuple[str | None, str | None]:
    if change is None:
        return None, None
    top = change.json if change.json is not None else dump(change.top)
    if not change.deep:
        return top, None
    ops = [[list(path), 1 if ensure else 0, value] for path, ensure, value in deep_ops(change)]
    return top, dump(ops)


def _fold(base: str, ops: str) -> str:
    """``base`` with each step of ``ops`` applied in order (``jsonb_set``)."""
    step_path = "ARRAY(SELECT jsonb_array_elements_text(x.o -> 0))"
    return f"""(CASE WHEN {ops} IS NULL THEN {base} ELSE (WITH RECURSIVE f(i, d) AS (
      SELECT 0, {base}
      UNION ALL
      SELECT f.i + 1, jsonb_set(f.d, {step_path}, CASE WHEN (x.o ->> 1) = '1'
          THEN (CASE WHEN jsonb_typeof(f.d #> {step_path}) = 'object'
                THEN f.d #> {step_path} ELSE '{{}}'::jsonb END)
          ELSE x.o -> 2 END, true)
      FROM f CROSS JOIN LATERAL (SELECT {ops} -> f.i AS o) AS x
      WHERE f.i < jsonb_array_length({ops})
    ) SELECT d FROM f WHERE i = jsonb_array_length({ops})) END)"""


class PostgresStore(BatchStore):
    def __init__(self, mode: ImportMode) -> None:
        super().__init__(mode)
        self._cache: dict[BatchShape, TextClause] = {}

    async def prepare(self, conn: AsyncConnection) -> None:
        await conn.execute(text(_CREATE_STAGE))

    # -- SQL -----------------------------------------------------------------------------------
    def _doc(self, doc: str, current: str, shape: BatchShape) -> str:
        top, ops = f"s.{doc}_top", f"s.{doc}_ops"
        if current == "'{}'::jsonb":
            base = f"COALESCE({top}, '{{}}'::jsonb)"
        elif self.mode is ImportMode.overwrite:
            base = f"COALESCE({top}, {current})"
        else:
            base = f"({current} || COALESCE({top}, '{{}}'::jsonb))"
        return _fold(base, ops) if shape.has_ops(doc) else base

    def _new_values(self, shape: BatchShape) -> tuple[list[str], list[str]]:
        """The updated columns and their new values for an existing user ``u``."""
        cols, values = [], []
        if shape.identity:
            for bit, name in enumerate(_FIELDS):
                cols.append(name)
                given = f"s.given & {1 << bit} <> 0"
                values.append(f"CASE WHEN {given} THEN s.{name} ELSE u.{name} END")
        for doc in ("markers", "context"):
            if shape.has(doc):
                cols.append(doc)
                values.append(self._doc(doc, f"u.{doc}", shape))
        return cols, values

    def _statement(self, shape: BatchShape) -> TextClause:
        stmt = self._cache.get(shape)
        if stmt is not None:
            return stmt
        cols, values = self._new_values(shape)
        existing = f"(SELECT count(*) FROM {STAGE} AS s JOIN users AS e ON e.id = s.id)"
        if self.mode is ImportMode.markers_only and not cols:
            sql = f"SELECT 0, 0, {existing}"
        elif self.mode is ImportMode.markers_only:
            sets = ", ".join(f"{c} = {v}" for c, v in zip(cols, values, strict=True))
            sql = (
                f"WITH up AS (UPDATE users AS u SET {sets}, updated_at = :now "
                f"FROM {STAGE} AS s WHERE u.id = s.id "
                f"AND u.id = ANY(ARRAY(SELECT id FROM {STAGE})) "  # by the index, in id order
                f"AND ({', '.join(f'u.{c}' for c in cols)}, true) IS DISTINCT FROM "
                f"({', '.join(values)}, true) RETURNING 1) "
                f"SELECT 0, (SELECT count(*) FROM up), {existing}"
            )
        else:
            ins_cols = ["id", "username", "first_name", "last_name", "gender", "is_active"]
            ins_values = [
                "s.id", "s.username", "s.first_name", "s.last_name",
                "COALESCE(s.gender, 'unknown')", "COALESCE(s.is_active, true)",
            ]  # fmt: skip
            for doc in ("markers", "context"):
                if shape.has(doc):
                    ins_cols.append(doc)
                    ins_values.append(self._doc(doc, "'{}'::jsonb", shape))
            # In id order: two writers that both lock users in id order never deadlock.
            insert = (
                f"INSERT INTO users AS u ({', '.join(ins_cols)}, created_at, updated_at) "
                f"SELECT {', '.join(ins_values)}, :now, :now FROM {STAGE} AS s ORDER BY s.id "
            )
            if self.mode is ImportMode.create or not cols:
                conflict = "ON CONFLICT (id) DO NOTHING"
            else:
                # The staged row of the conflicting user, read by its primary key.
                staged = f"FROM {STAGE} AS s WHERE s.id = excluded.id"
                conflict = (
                    f"ON CONFLICT (id) DO UPDATE SET ({', '.join(cols)}, updated_at) = "
                    f"(SELECT {', '.join(values)}, :now {staged}) "
                    f"WHERE EXISTS (SELECT 1 {staged} AND "
                    f"({', '.join(f'u.{c}' for c in cols)}, true) IS DISTINCT FROM "
                    f"({', '.join(values)}, true))"
                )
            sql = (
                f"WITH up AS ({insert}{conflict} RETURNING (xmax = 0) AS created) "
                "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created), 0 "
                "FROM up"
            )
        stmt = text(sql).bindparams(bindparam("now", type_=UTCDateTime()))
        self._cache[shape] = stmt
        return stmt

    # -- batches -------------------------------------------------------------------------------
    @staticmethod
    def records(rows: list[ImportRow]) -> list[tuple[Any, ...]]:
        out = []
        for r in rows:
            mt, mo = _encode_doc(r.markers)
            ct, co = _encode_doc(r.context)
            out.append((
                r.id, r.given, r.username, r.first_name, r.last_name, r.gender, r.is_active,
                mt, mo, ct, co,
            ))  # fmt: skip
        return out

    async def apply(
        self, conn: AsyncConnection, rows: list[ImportRow], now: datetime
    ) -> BatchCounts:
        # Starts the batch's transaction (the COPY below goes through the driver directly)
        # and clears what a failed attempt may have left.
        await conn.execute(text(f"DELETE FROM {STAGE}"))
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(STAGE, records=self.records(rows), columns=_COLUMNS)
        shape = BatchShape.of(rows, steps=lambda change: bool(change.deep))
        created, updated, existing = (
            await conn.execute(self._statement(shape), {"now": now})
        ).one()
        counts = BatchCounts(created=created, updated=updated)
        if self.mode is ImportMode.create:
            counts.skipped = len(rows) - created
        elif self.mode is ImportMode.markers_only:
            counts.skipped = len(rows) - existing
            counts.unchanged = existing - updated
        else:
            counts.unchanged = len(rows) - created - updated
        return counts
