"""Who was active on which UTC days: ``activity_weeks``, one row per user and week (from
Monday, UTC) in which the user did one of :data:`~relove.events.catalog.USER_ACTIONS`, with the
days of that week as a 7-bit mask (bit 0 Monday … bit 6 Sunday).

Retention reads it instead of the raw history: at 10M events / 1M users an 8-week window held
4.7M events but 2.1M (user, week) rows, and a weekly retention counts those rows per (cohort,
week) without first reducing them to one row per user (see docs/benchmarks.md, "Events
(history)"). It is kept exact by the database itself, whoever writes: triggers on ``events``
add the day of every inserted user action and, when events are deleted (``/forget``, SQLite's
pruning, a test's cleanup), recompute the days of the weeks those events were in. So every
writer (the touch batch, lifecycle CTEs, markers, import, the API …) is covered without a line
of its own, in the writer's transaction.

* PostgreSQL: statement-level ``AFTER`` triggers on the partitioned ``events`` with transition
  tables: one set-based statement per INSERT, not one per row; a (user, week) whose day is
  already recorded is skipped before the upsert (no row lock, no write). Statement triggers on
  a partitioned table fire for statements addressed to it, not to a partition: the partition
  manager's move of rows out of the default partition changes nothing here, which is right
  (the rows only move). ``TRUNCATE events`` empties the rollup too.
* SQLite: row-level triggers.

What the triggers do not see: a dropped month partition (PostgreSQL's pruning) and the rows
deleted from the default partition with it. :func:`prune_activity` runs after them and clears
the rollup's days before the kept history, so the rollup never outlives it.

Events are append-only (nothing updates ``user_id``, ``name`` or ``at``), so there is no UPDATE
trigger. The names are fixed in the triggers: changing ``USER_ACTIONS`` needs a migration that
recreates them (:func:`create_triggers`) and refills the table (:func:`backfill`).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Connection, text

from relove.events.catalog import USER_ACTIONS

TABLE = "activity_weeks"

# PostgreSQL: the UTC day of ``at``, its week's Monday and its bit.
_PG_DAY = "(at AT TIME ZONE 'UTC')::date"
_PG_WEEK = f"({_PG_DAY} - (extract(isodow FROM at AT TIME ZONE 'UTC')::int - 1))"
_PG_BIT = "(1 << (extract(isodow FROM at AT TIME ZONE 'UTC')::int - 1))"
# SQLite: ``at`` is ISO text in UTC (``YYYY-MM-DD HH:MM:SS…``); its first ten characters are the
# day ('weekday 0' moves to the coming Sunday, or stays on one; six days back is its Monday).
_SQ_WEEK = "date(substr({at}, 1, 10), 'weekday 0', '-6 days')"
_SQ_BIT = "(1 << ((CAST(strftime('%w', substr({at}, 1, 10)) AS INTEGER) + 6) % 7))"


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _pg_ddl(names: str) -> list[str]:
    return [
        f"""
        CREATE OR REPLACE FUNCTION activity_weeks_insert() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO activity_weeks AS a (user_id, week, days)
            SELECT n.user_id, n.week, n.days
            FROM (SELECT user_id, {_PG_WEEK} AS week, bit_or({_PG_BIT})::smallint AS days
                  FROM new_events WHERE user_id IS NOT NULL AND name IN ({names})
                  GROUP BY 1, 2) AS n
            WHERE NOT EXISTS (SELECT 1 FROM activity_weeks x WHERE x.user_id = n.user_id
                              AND x.week = n.week AND x.days & n.days = n.days)
            ORDER BY 1, 2  -- one lock order for concurrent writers
            ON CONFLICT (user_id, week) DO UPDATE SET days = a.days | excluded.days;
            RETURN NULL;
        END $$""",
        f"""
        CREATE OR REPLACE FUNCTION activity_weeks_delete() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            WITH o AS (
                SELECT DISTINCT user_id, {_PG_WEEK} AS week FROM old_events
                WHERE user_id IS NOT NULL AND name IN ({names})
            ), r AS (
                SELECT o.user_id, o.week, (
                    SELECT bit_or({_PG_BIT})::smallint FROM events
                    WHERE events.user_id = o.user_id AND name IN ({names})
                      AND at >= o.week::timestamp AT TIME ZONE 'UTC'
                      AND at < (o.week + 7)::timestamp AT TIME ZONE 'UTC'
                ) AS days FROM o
            ), kept AS (
                UPDATE activity_weeks a SET days = r.days FROM r
                WHERE a.user_id = r.user_id AND a.week = r.week AND r.days IS NOT NULL
                  AND a.days <> r.days
            )
            DELETE FROM activity_weeks a USING r
            WHERE a.user_id = r.user_id AND a.week = r.week AND r.days IS NULL;
            RETURN NULL;
        END $$""",
        """
        CREATE OR REPLACE FUNCTION activity_weeks_truncate() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE activity_weeks;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER events_activity_insert AFTER INSERT ON events "
        "REFERENCING NEW TABLE AS new_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION activity_weeks_insert()",
        "CREATE TRIGGER events_activity_delete AFTER DELETE ON events "
        "REFERENCING OLD TABLE AS old_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION activity_weeks_delete()",
        "CREATE TRIGGER events_activity_truncate AFTER TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION activity_weeks_truncate()",
    ]


def _sqlite_ddl(names: str) -> list[str]:
    new_week, new_bit = _SQ_WEEK.format(at="NEW.at"), _SQ_BIT.format(at="NEW.at")
    old_week = _SQ_WEEK.format(at="OLD.at")
    # SQLite has no bit_or(): the sum of the distinct day bits is the same number.
    days = (
        f"(SELECT total(b) FROM (SELECT DISTINCT {_SQ_BIT.format(at='at')} AS b FROM events "
        f"WHERE user_id = OLD.user_id AND name IN ({names}) "
        f"AND at >= {old_week} AND at < date({old_week}, '+7 days')))"
    )
    return [
        f"CREATE TRIGGER events_activity_insert AFTER INSERT ON events "
        f"WHEN NEW.user_id IS NOT NULL AND NEW.name IN ({names}) BEGIN "
        f"INSERT OR IGNORE INTO activity_weeks (user_id, week, days) "
        f"VALUES (NEW.user_id, {new_week}, 0); "
        f"UPDATE activity_weeks SET days = days | {new_bit} "
        f"WHERE user_id = NEW.user_id AND week = {new_week} AND days & {new_bit} = 0; END",
        f"CREATE TRIGGER events_activity_delete AFTER DELETE ON events "
        f"WHEN OLD.user_id IS NOT NULL AND OLD.name IN ({names}) BEGIN "
        f"UPDATE activity_weeks SET days = CAST({days} AS INTEGER) "
        f"WHERE user_id = OLD.user_id AND week = {old_week}; "
        f"DELETE FROM activity_weeks WHERE user_id = OLD.user_id AND week = {old_week} "
        "AND days = 0; END",
    ]


def create_triggers(conn: Connection, names: tuple[str, ...] = USER_ACTIONS) -> None:
    """The triggers that keep ``activity_weeks`` exact (the table exists)."""
    ddl = _pg_ddl if conn.dialect.name == "postgresql" else _sqlite_ddl
    for statement in ddl(_names(names)):
        conn.execute(text(statement))


def drop_triggers(conn: Connection) -> None:
    pg = conn.dialect.name == "postgresql"
    for trigger in ("events_activity_insert", "events_activity_delete",
                    "events_activity_truncate"):  # fmt: skip
        if pg or trigger != "events_activity_truncate":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON events" if pg else "")))
    if pg:
        for fn in ("insert", "delete", "truncate"):
            conn.execute(text(f"DROP FUNCTION IF EXISTS activity_weeks_{fn}()"))


def backfill(conn: Connection, names: tuple[str, ...] = USER_ACTIONS) -> int:
    """Fill ``activity_weeks`` from the events already stored (the migration: after the
    triggers exist, in the same transaction, so no event is missed or counted twice)."""
    where = f"user_id IS NOT NULL AND name IN ({_names(names)})"
    if conn.dialect.name == "postgresql":
        # 4 MB sorted 10M events' weeks on disk for over ten minutes; in memory it takes seconds.
        conn.execute(text("SET LOCAL work_mem = '512MB'"))
        sql = (
            f"INSERT INTO activity_weeks (user_id, week, days) "
            f"SELECT user_id, {_PG_WEEK}, bit_or({_PG_BIT})::smallint FROM events "
            f"WHERE {where} GROUP BY 1, 2 ON CONFLICT DO NOTHING"
        )
    else:
        sql = (
            "INSERT OR IGNORE INTO activity_weeks (user_id, week, days) "
            "SELECT user_id, week, CAST(total(b) AS INTEGER) FROM ("
            f"SELECT DISTINCT user_id, {_SQ_WEEK.format(at='at')} AS week, "
            f"{_SQ_BIT.format(at='at')} AS b FROM events WHERE {where}) GROUP BY user_id, week"
        )
    return conn.execute(text(sql)).rowcount or 0


def prune_activity(conn: Connection, before: date) -> int:
    """Clear the rollup's days before ``before`` (after the history before it was deleted):
    weeks that end by then go, the week around it keeps only its later days. Returns the rows
    deleted."""
    monday = before - timedelta(days=before.weekday())
    keep = 0x7F & ~((1 << before.weekday()) - 1)  # the days from ``before`` on
    pg = conn.dialect.name == "postgresql"
    params = {"monday": monday if pg else monday.isoformat(), "keep": keep}
    conn.execute(
        text("UPDATE activity_weeks SET days = days & :keep WHERE week = :monday"), params
    )
    result = conn.execute(
        text("DELETE FROM activity_weeks WHERE week < :monday OR (week = :monday AND days = 0)"),
        params,
    )
    return result.rowcount or 0
