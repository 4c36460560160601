"""The unit of work: who opens, commits and ends a database transaction.

The rule, for every surface (bot handlers, CLI commands, API routes, workers):

1. **One session per unit** — an update (``DbSessionMiddleware``), a command (``open_db``), a
   request, a worker step — opened at the boundary and committed there when the unit succeeds;
   when it fails the session closes without commit (everything rolls back).
2. **Services and read helpers never commit or roll back the caller's session.** They execute
   and flush; the caller decides. A handler commits or rolls back only in its own body, where a
   reader sees it: before replying with the result of a state change, or after a refused input.
   (The bot also commits before every Bot API call — ``CommitBeforeSend`` — so no lock is held
   across the network.)
3. **A unit that reads and then writes says so first**: ``await begin_write(session)``. On
   SQLite a transaction begins deferred; if it first reads and another connection commits
   before it writes, its write fails at once with "database is locked" (a stale snapshot cannot
   be upgraded, whatever the busy timeout). ``begin_write`` starts the transaction as a writer
   (``BEGIN IMMEDIATE``, waiting for the lock like any write). PostgreSQL needs nothing.
4. **Background work** (summaries, gender inference, broadcasts) opens its own session and
   commits it itself; it never borrows an update's session.

To know whether an open SQLite transaction has written, the engine tracks each transaction's
statements (:func:`track_statement`): ``begin_write`` ends a transaction that has only read
(there is nothing to commit) and leaves one that has written alone (it already holds the lock).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

#: Execution option asking the SQLite engine to begin the transaction with BEGIN IMMEDIATE.
WRITE_INTENT = "relove_write_intent"
_STATE = "relove.txn"  # per DBAPI connection: "empty" | "read" | "write"


def began(conn: Any, *, immediate: bool) -> None:
    """A transaction began on ``conn`` (a SQLAlchemy Connection)."""
    conn.info[_STATE] = "write" if immediate else "empty"


def track_statement(conn: Any, statement: str) -> None:
    """Before each statement: does the transaction still only read?"""
    head = statement.lstrip()[:6].upper()
    if head.startswith("BEGIN") or conn.info.get(_STATE) == "write":
        return
    conn.info[_STATE] = "read" if head == "SELECT" else "write"


def wants_immediate(conn: Any) -> bool:
    return bool(conn.get_execution_options().get(WRITE_INTENT))


async def begin_write(executor: AsyncSession | AsyncConnection) -> None:
    """Declare that this unit will write after it reads (rule 3 above). Commits nothing the unit
    wrote: a transaction that has only read is ended (it holds no changes), one that has
    written is left as it is."""
    if not isinstance(executor, AsyncSession) or executor.get_bind().dialect.name != "sqlite":
        return
    if executor.in_transaction():
        await executor.flush()  # pending ORM changes are writes: then the unit is a writer
        conn = await executor.connection()
        if conn.info.get(_STATE) == "write":
            return
        await executor.commit()  # only reads so far: ends the snapshot, nothing to commit
    await executor.connection(execution_options={WRITE_INTENT: True})
