"""Monthly partitions of ``events`` on PostgreSQL.

``events`` is partitioned by range on ``at``, one partition per UTC month (``events_p202611``),
plus a DEFAULT partition (``events_default``) so that an insert never fails for a missing month:
an event dated where no partition exists yet (far past or future, or the maintenance did not run)
lands in the default partition. :func:`ensure_partitions` creates the coming months ahead of time
(the worker and the bot call it periodically) and moves any rows the default partition holds for
a month into that month's new partition, in one transaction. :func:`drop_partitions_before`
drops whole months that are past the retention.

Every function runs on a synchronous SQLAlchemy ``Connection`` (the migration's), and through
``AsyncConnection.run_sync`` at run time; all of them are no-ops on SQLite.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "events_default"
#: Months created ahead of the current one.
MONTHS_AHEAD = 3
#: ``pg_advisory_xact_lock`` key: one partition manager at a time (any process).
_LOCK_KEY = 0x7265_6C6F_7665_0004  # "relove" + 4


def month_start(at: datetime | date) -> date:
    return date(at.year, at.month, 1)


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(start: date) -> str:
    return f"events_p{start.year:04d}{start.month:02d}"


def partition_start(name: str) -> date:
    """The first day of the month partition ``name`` (``events_p202611`` → 2026-11-01)."""
    return date(int(name[8:12]), int(name[12:14]), 1)


def _bound(d: date) -> str:
    return f"{d.isoformat()} 00:00:00+00"


@dataclass(frozen=True)
class Partition:
    name: str
    start: date
    end: date


def list_partitions(conn: Connection) -> list[Partition]:
    """The monthly partitions of ``events`` (not the default), oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass"
        )
    ).scalars()
    out = []
    for name in rows:
        if not name.startswith("events_p") or len(name) != len("events_p202601"):
            continue
        start = partition_start(name)
        out.append(Partition(name, start, add_months(start, 1)))
    return sorted(out, key=lambda p: p.start)


def _create_partition(conn: Connection, start: date) -> None:
    """Create one month's partition; rows the default partition holds for it move into it."""
    name, end = partition_name(start), add_months(start, 1)
    lo, hi = _bound(start), _bound(end)
    conn.execute(
        text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    moved = conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE at >= '{lo}' AND at < '{hi}' "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        )
    ).rowcount
    conn.execute(
        text(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{hi}')")
    )
    _dedupe_index(conn, name)
    if moved:
        log.info("events: partition %s created, %s rows moved from the default", name, moved)
    else:
        log.info("events: partition %s created", name)


def _dedupe_index(conn: Connection, table: str) -> None:
    # A unique index on a partitioned table must contain the partition key (``at``), which
    # would make the key unique per instant, not per day. A day lies inside one month, so a
    # unique index on each partition gives "unique per day" for the whole table; inserts use
    # ON CONFLICT DO NOTHING (no target), which every leaf's unique indexes answer.
    conn.execute(
        text(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_dedupe ON {table} "
            "(dedupe_key, ((at AT TIME ZONE 'UTC')::date)) WHERE dedupe_key IS NOT NULL"
        )
    )


def ensure_partitions(
    conn: Connection, *, now: datetime | None = None, ahead: int = MONTHS_AHEAD, back: int = 0
) -> list[str]:
    """Create the partitions of the months from ``back`` months ago to ``ahead`` months after
    ``now``'s month, and of any month the default partition has rows for. Returns the names
    created. Call it in a transaction of its own (it takes an advisory lock, so concurrent
    callers in other processes wait instead of colliding)."""
    if conn.dialect.name != "postgresql":
        return []
    now = now or datetime.now(UTC)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    existing = {p.start for p in list_partitions(conn)}
    current = month_start(now.astimezone(UTC))
    wanted = {add_months(current, i) for i in range(-back, ahead + 1)}
    stray = conn.execute(
        text(
            f"SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC') FROM {DEFAULT_PARTITION}"
        )
    ).scalars()
    wanted |= {month_start(m) for m in stray if m is not None}
    created = []
    for start in sorted(wanted - existing):
        _create_partition(conn, start)
        created.append(partition_name(start))
    return created


def drop_partitions_before(conn: Connection, cutoff: datetime) -> list[str]:
    """Drop every monthly partition that ends at or before ``cutoff`` (whole months only: a
    month is dropped once all of it is past the retention) and delete the default partition's
    older rows. Returns the names dropped."""
    if conn.dialect.name != "postgresql":
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    dropped = []
    for p in list_partitions(conn):
        if datetime(p.end.year, p.end.month, p.end.day, tzinfo=UTC) <= cutoff:
            conn.execute(text(f"DROP TABLE {p.name}"))
            dropped.append(p.name)
    conn.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE at < :cutoff"), {"cutoff": cutoff})
    if dropped:
        log.info("events: dropped partitions %s (older than %s)", ", ".join(dropped), cutoff)
    return dropped


def create_partitioned_table(conn: Connection, *, now: datetime | None = None) -> None:
    """The migration's DDL on PostgreSQL: the partitioned table, its indexes, the default
    partition and the months around ``now``."""
    conn.execute(text("CREATE SEQUENCE events_id_seq AS bigint"))
    conn.execute(text(pg_table_ddl()))
    conn.execute(text("ALTER SEQUENCE events_id_seq OWNED BY events.id"))
    for ddl in PG_INDEXES:
        conn.execute(text(ddl))
    conn.execute(text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF events DEFAULT"))
    _dedupe_index(conn, DEFAULT_PARTITION)
    ensure_partitions(conn, now=now, back=1)


_PG_TABLE = """
CREATE TABLE events (
    id bigint NOT NULL DEFAULT nextval('events_id_seq'),
    user_id bigint,
    name varchar(100) NOT NULL,
    props jsonb NOT NULL DEFAULT '{}'::jsonb,
    source varchar(16) NOT NULL,
    actor varchar(200),
    at timestamptz NOT NULL,
    dedupe_key varchar(200),
    CONSTRAINT ck_events_props CHECK (jsonb_typeof(props) = 'object'
                                      AND octet_length(props::text) <= %(props_max)d),
    CONSTRAINT ck_events_source CHECK (source IN (%(sources)s))
) PARTITION BY RANGE (at)
"""

def pg_table_ddl() -> str:
    from relove.events.catalog import EventSource
    from relove.events.models import PROPS_MAX_BYTES

    sources = ", ".join(f"'{s.value}'" for s in EventSource)
    return _PG_TABLE % {"props_max": PROPS_MAX_BYTES, "sources": sources}


PG_INDEXES = [
    "CREATE INDEX ix_events_at_brin ON events USING brin (at)",
    "CREATE INDEX ix_events_user_id_at ON events (user_id, at DESC, id DESC)",
    "CREATE INDEX ix_events_name_at ON events (name, at)",
]
