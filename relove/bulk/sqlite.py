"""SQLite: a batch travels as ONE bound JSON array unpacked by ``json_each`` — one INSERT for
the new users and one UPDATE … FROM for the existing ones, in the batch's transaction.

Documents: keys with plain values are merged with ``json_patch`` (which keeps the position of
existing keys, so an unchanged document keeps its exact text); keys whose value is null or an
object, and dotted paths, are set one by one with ``json_set`` by a recursive CTE (``json_patch``
would read a null as "delete" and merge objects key by key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from relove.bulk.base import BatchCounts, BatchShape, BatchStore, ImportMode, deep_ops, dump
from relove.bulk.rows import DocChange, ImportRow
from relove.db.types import UTCDateTime

# The array's elements: [line, id, given, username, first_name, last_name, gender, is_active,
#   markers_fast, markers_ops, markers_keys, context_fast, context_ops, context_keys]
_SOURCE = """(SELECT value ->> 1 AS id, value ->> 2 AS given, value ->> 3 AS username,
    value ->> 4 AS first_name, value ->> 5 AS last_name, value ->> 6 AS gender,
    value ->> 7 AS is_active,
    value ->> 8 AS markers_fast, value ->> 9 AS markers_ops, value ->> 10 AS markers_keys,
    value ->> 11 AS context_fast, value ->> 12 AS context_ops, value ->> 13 AS context_keys
  FROM json_each(:batch) WHERE true)"""

_FIELDS = ("username", "first_name", "last_name", "gender", "is_active")


def _path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{key}"' for key in path)


def _encode_doc(change: DocChange | None) -> tuple[Any, Any, Any]:
    """(fast patch, set steps, top-level keys) of one document; all None when not given."""
    if change is None:
        return None, None, None
    fast: dict[str, Any] = {}
    ops: list[list[Any]] = []
    for key, value in change.top.items():
        if value is None or isinstance(value, dict):
            ops.append([_path((key,)), 0, value])
        else:
            fast[key] = value
    for path, ensure, value in deep_ops(change):
        ops.append([_path(path), 1 if ensure else 0, value])
    return fast or None, ops or None, list(change.top)


def _needs_steps(change: DocChange) -> bool:
    return bool(change.deep) or any(v is None or isinstance(v, dict) for v in change.top.values())


def _fold(base: str, ops: str) -> str:
    """``base`` with each step of the JSON array ``ops`` applied in order."""
    return f"""(CASE WHEN {ops} IS NULL THEN {base} ELSE (WITH RECURSIVE f(i, d) AS (
      SELECT 0, {base}
      UNION ALL
      SELECT f.i + 1, json_set(f.d, o.value ->> 0, CASE WHEN o.value ->> 1 = 1
          THEN (CASE WHEN json_type(f.d, o.value ->> 0) = 'object'
                THEN json(f.d -> (o.value ->> 0)) ELSE json('{{}}') END)
          ELSE json(o.value -> 2) END)
      FROM f JOIN json_each({ops}) AS o ON o.key = f.i
    ) SELECT d FROM f WHERE i = json_array_length({ops})) END)"""


class SQLiteStore(BatchStore):
    def __init__(self, mode: ImportMode) -> None:
        super().__init__(mode)
        self._cache: dict[tuple[str, BatchShape], TextClause] = {}

    # -- SQL -----------------------------------------------------------------------------------
    def _doc(self, doc: str, current: str, shape: BatchShape, *, new: bool) -> str:
        fast, ops, keys = f"s.{doc}_fast", f"s.{doc}_ops", f"s.{doc}_keys"
        if new:
            base = f"COALESCE(json({fast}), json('{{}}'))"
        elif self.mode is ImportMode.overwrite:
            # Drop the keys the row does not give (a merge patch with nulls), keep the rest
            # in place, then patch.
            drop = (
                f"(SELECT json_group_object(k.key, json('null')) FROM json_each({current}) AS k "
                f"WHERE NOT EXISTS (SELECT 1 FROM json_each({keys}) AS w WHERE w.value = k.key))"
            )
            base = (
                f"(CASE WHEN {keys} IS NULL THEN {current} "
                f"ELSE json_patch(json_patch({current}, {drop}), COALESCE({fast}, '{{}}')) END)"
            )
        else:
            patched = f"json_patch({current}, {fast})"
            base = f"(CASE WHEN {fast} IS NULL THEN {current} ELSE {patched} END)"
        return _fold(base, ops) if shape.has_ops(doc) else base

    def _insert(self, shape: BatchShape) -> TextClause:
        cols = ["id", "username", "first_name", "last_name", "gender", "is_active"]
        values = [
            "s.id", "s.username", "s.first_name", "s.last_name",
            "COALESCE(s.gender, 'unknown')", "COALESCE(s.is_active, 1)",
        ]  # fmt: skip
        for doc in ("markers", "context"):
            if shape.has(doc):
                cols.append(doc)
                values.append(self._doc(doc, "'{}'", shape, new=True))
        sql = (
            f"INSERT INTO users ({', '.join(cols)}, created_at, updated_at) "
            f"SELECT {', '.join(values)}, :now, :now FROM {_SOURCE} AS s WHERE true "
            "ON CONFLICT (id) DO NOTHING"
        )
        return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))

    def _update(self, shape: BatchShape) -> TextClause:
        sets, news, changed = [], [], []
        if shape.identity:
            for bit, name in enumerate(_FIELDS):
                news.append(
                    f"CASE WHEN s.given & {1 << bit} THEN s.{name} ELSE u.{name} END AS {name}"
                )
                sets.append(f"{name} = x.{name}")
                changed.append(f"users.{name} IS NOT x.{name}")
        for doc in ("markers", "context"):
            if shape.has(doc):
                news.append(f"{self._doc(doc, f'u.{doc}', shape, new=False)} AS {doc}")
                sets.append(f"{doc} = x.{doc}")
                changed.append(f"users.{doc} IS NOT x.{doc}")
        sql = (
            f"UPDATE users SET {', '.join(sets)}, updated_at = :now "
            f"FROM (SELECT u.id, {', '.join(news)} FROM {_SOURCE} AS s "
            f"JOIN users AS u ON u.id = s.id) AS x "
            f"WHERE users.id = x.id AND ({' OR '.join(changed)})"
        )
        return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))

    def _statement(self, kind: str, shape: BatchShape) -> TextClause:
        stmt = self._cache.get((kind, shape))
        if stmt is None:
            stmt = self._insert(shape) if kind == "insert" else self._update(shape)
            self._cache[(kind, shape)] = stmt
        return stmt

    # -- batches -------------------------------------------------------------------------------
    @staticmethod
    def encode(rows: list[ImportRow]) -> str:
        out = []
        for r in rows:
            mf, mo, mk = _encode_doc(r.markers)
            cf, co, ck = _encode_doc(r.context)
            out.append([
                r.line, r.id, r.given, r.username, r.first_name, r.last_name, r.gender,
                r.is_active, mf, mo, mk, cf, co, ck,
            ])  # fmt: skip
        return dump(out)

    async def apply(
        self, conn: AsyncConnection, rows: list[ImportRow], now: datetime
    ) -> BatchCounts:
        shape = BatchShape.of(rows, steps=_needs_steps)
        params = {"batch": self.encode(rows), "now": now}
        counts = BatchCounts()
        if self.mode.creates:
            result = await conn.execute(self._statement("insert", shape), params)
            counts.created = result.rowcount
        if self.mode is ImportMode.markers_only:
            existing = await conn.execute(
                text(f"SELECT count(*) FROM {_SOURCE} AS s JOIN users AS u ON u.id = s.id"),
                {"batch": params["batch"]},
            )
            counts.skipped = len(rows) - int(existing.scalar_one())
        elif not self.mode.updates:
            counts.skipped = len(rows) - counts.created
        if self.mode.updates and (shape.identity or shape.markers or shape.context):
            result = await conn.execute(self._statement("update", shape), params)
            counts.updated = result.rowcount
        if self.mode.updates:
            counts.unchanged = len(rows) - counts.created - counts.updated - counts.skipped
        return counts
