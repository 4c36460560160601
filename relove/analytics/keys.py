"""Which marker (or context) keys users actually have: each top-level key with its value types
and how many users hold it — the console's audience columns and the dashboard's top markers.

Small tables are read whole (exact counts). Past ``exact_below`` users a sample is read and the
counts scaled (``estimated=True``): on PostgreSQL ``TABLESAMPLE SYSTEM`` (random pages, a few
milliseconds at a million users), on SQLite the newest users by id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from relove.users.paths import Document, check_document

SAMPLE_ROWS = 20_000
EXACT_BELOW = 50_000

_PG_TYPES = {"string": "string", "number": "number", "boolean": "boolean", "array": "list",
             "object": "object", "null": "null"}
_SQLITE_TYPES = {"text": "string", "integer": "number", "real": "number", "true": "boolean",
                 "false": "boolean", "array": "list", "object": "object", "null": "null"}


@dataclass
class KeyStat:
    key: str
    #: users holding the key (scaled when estimated)
    count: int
    #: value type → users, most common first
    types: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The dominant value type (string, number, boolean, list, object, null)."""
        return next(iter(self.types), "null")


@dataclass
class KeyStats:
    total: int
    keys: list[KeyStat]
    estimated: bool
    sampled: int

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "estimated": self.estimated, "sampled": self.sampled,
                "keys": [{"key": k.key, "count": k.count, "kind": k.kind, "types": k.types}
                         for k in self.keys]}


async def _total(session: AsyncSession, pg: bool) -> tuple[int, bool]:
    """The number of users: PostgreSQL's estimate when large (exact count otherwise)."""
    if pg:
        est = (await session.execute(text(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'users'::regclass"
        ))).scalar_one()
        if est is not None and est >= EXACT_BELOW:
            return int(est), True
    return int((await session.execute(text("SELECT count(*) FROM users"))).scalar_one()), False


async def key_stats(
    session: AsyncSession, doc: Document = "markers", *, sample_rows: int = SAMPLE_ROWS,
    exact_below: int = EXACT_BELOW, limit: int = 200,
) -> KeyStats:
    doc = check_document(doc)
    pg = session.get_bind().dialect.name == "postgresql"
    total, large = await _total(session, pg)
    sample = large or total >= exact_below
    if pg:
        source = "users"
        if sample:
            pct = min(100.0, 100.0 * sample_rows / max(total, 1))
            source = f"users TABLESAMPLE SYSTEM ({pct:.6f})"
        sql = (f"WITH s AS MATERIALIZED (SELECT {doc} AS d FROM {source}) "
               "SELECT k.key, jsonb_typeof(k.value), count(*), (SELECT count(*) FROM s) "
               "FROM s, jsonb_each(s.d) k GROUP BY 1, 2")
        types = _PG_TYPES
    else:
        limit_sql = f" ORDER BY id DESC LIMIT {int(sample_rows)}" if sample else ""
        sql = (f"WITH s AS MATERIALIZED (SELECT {doc} AS d FROM users{limit_sql}) "
               "SELECT j.key, j.type, count(*), (SELECT count(*) FROM s) "
               "FROM s, json_each(s.d) j GROUP BY 1, 2")
        types = _SQLITE_TYPES
    rows = (await session.execute(text(sql))).all()
    sampled = int(rows[0][3]) if rows else (0 if sample else total)
    scale = total / sampled if sample and sampled else 1.0
    per_key: dict[str, Counter[str]] = {}
    for key, kind, n, _ in rows:
        per_key.setdefault(str(key), Counter())[types.get(str(kind), "object")] += int(n)
    stats = []
    for key, counter in per_key.items():
        ordered = dict(sorted(((k, round(v * scale)) for k, v in counter.items()),
                              key=lambda kv: -kv[1]))
        stats.append(KeyStat(key, sum(ordered.values()), ordered))
    stats.sort(key=lambda s: (-s.count, s.key))
    return KeyStats(total=total, keys=stats[:limit], estimated=sample, sampled=sampled)
