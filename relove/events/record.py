"""Writing events: :func:`record` (one) and :func:`record_many` (a batch), in the caller's
transaction.

A batch travels as ONE bound JSON array that the database unpacks (``INSERT … SELECT`` from
``jsonb_array_elements`` / ``json_each``), so a batch of any size is one statement and one round
trip, on both databases. The same SQL is exposed to other writers' statements by
:class:`BatchInsert` — the touch batch puts it into its upsert as a CTE on PostgreSQL (one
statement per flush) and runs it beside the upsert on SQLite (one transaction).

An event may carry a conversation message (:class:`NewMessage`): the same array then feeds an
insert into ``messages`` too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from relove.db.types import UTCDateTime, utcnow
from relove.errors import InvalidInput
from relove.events.catalog import EventSource, check_name, check_source
from relove.events.models import ACTOR_MAX_LENGTH, DEDUPE_KEY_MAX_LENGTH, PROPS_MAX_BYTES

Executor = AsyncSession | AsyncConnection

#: Longest message text kept in the conversation (Telegram's own limit is 4096 characters).
MESSAGE_MAX_CHARS = 4096


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message of the conversation that comes with an event (``in``: the user wrote it)."""

    kind: str  # text, command, button, photo … (in); reply, operator (out)
    text: str | None = None
    message_id: int | None = None
    direction: str = "in"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write. ``source``/``actor``/``at`` default to the batch's."""

    user_id: int | None
    name: str
    props: Mapping[str, Any] | None = None
    at: datetime | None = None
    dedupe_key: str | None = None
    source: EventSource | str | None = None
    actor: str | None = None
    message: NewMessage | None = None


def _dialect(executor: Executor) -> str:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name


def _sqlite_time(at: datetime) -> str:
    """The text SQLite stores for a UTC datetime (the format SQLAlchemy writes and compares)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- SQL ---------------------------------------------------------------------------------------
# The array's elements: [user_id, name, props, source, actor, at|null, dedupe_key|null,
#                        message kind|null, message text|null, message_id|null, direction|null]
_COLUMNS = "user_id, name, props, source, actor, at, dedupe_key"

_PG_EVENTS = f"""INSERT INTO events ({_COLUMNS})
SELECT CAST(e ->> 0 AS bigint), e ->> 1, e -> 2, e ->> 3, e ->> 4,
       COALESCE(CAST(e ->> 5 AS timestamptz), CAST(:now AS timestamptz)), e ->> 6
FROM jsonb_array_elements(CAST(:events AS jsonb)) AS e"""

_PG_MESSAGES = """INSERT INTO messages (user_id, at, direction, kind, text, message_id, source,
                      actor)
SELECT CAST(e ->> 0 AS bigint), COALESCE(CAST(e ->> 5 AS timestamptz), CAST(:now AS timestamptz)),
       e ->> 10, e ->> 7, e ->> 8, CAST(e ->> 9 AS bigint), e ->> 3, e ->> 4
FROM jsonb_array_elements(CAST(:events AS jsonb)) AS e
WHERE e ->> 7 IS NOT NULL AND e ->> 0 IS NOT NULL"""

_SQLITE_EVENTS = f"""INSERT INTO events ({_COLUMNS})
SELECT value ->> '$[0]', value ->> '$[1]', json(value -> '$[2]'), value ->> '$[3]',
       value ->> '$[4]', COALESCE(value ->> '$[5]', :now), value ->> '$[6]'
FROM json_each(:events) WHERE true"""

_SQLITE_MESSAGES = """INSERT INTO messages (user_id, at, direction, kind, text, message_id, source,
                      actor)
SELECT value ->> '$[0]', COALESCE(value ->> '$[5]', :now), value ->> '$[10]', value ->> '$[7]',
       value ->> '$[8]', value ->> '$[9]', value ->> '$[3]', value ->> '$[4]'
FROM json_each(:events) WHERE value ->> '$[7]' IS NOT NULL AND value ->> '$[0]' IS NOT NULL"""

_ON_CONFLICT = "\nON CONFLICT DO NOTHING"


class BatchInsert:
    """The SQL that writes a batch of events (and their messages) from one bound JSON array.

    Parameters: ``:events`` (from :meth:`encode`) and ``:now`` (a UTC datetime, the time of
    events without their own ``at``). Build it once per dialect and reuse it.

    * PostgreSQL: :attr:`ctes` is ``ev_events AS (INSERT …), ev_messages AS (INSERT …)`` to put
      in front of another statement (``WITH {ctes} INSERT INTO users …``), so the batch costs no
      extra statement; :attr:`statement` is the standalone form.
    * SQLite (no data-modifying CTEs): :attr:`statements` — run them in the same transaction as
      the rest of the batch.
    """

    def __init__(self, dialect: str, *, dedupe: bool = False) -> None:
        self.dialect = dialect
        suffix = _ON_CONFLICT if dedupe else ""
        if dialect == "postgresql":
            self.ctes = f"ev_events AS ({_PG_EVENTS}{suffix}), ev_messages AS ({_PG_MESSAGES})"
            # The messages CTE runs whether or not it is referenced; events is the main part.
            sql = f"WITH ev_messages AS ({_PG_MESSAGES})\n{_PG_EVENTS}{suffix}"
            self.statements = [_bind_now(text(sql))]
        else:
            self.ctes = ""
            self.statements = [
                _bind_now(text(_SQLITE_EVENTS + suffix)),
                _bind_now(text(_SQLITE_MESSAGES)),
            ]

    @property
    def statement(self) -> TextClause:
        """PostgreSQL's single statement (events and messages together)."""
        assert self.dialect == "postgresql"
        return self.statements[0]

    def encode(
        self,
        events: Iterable[NewEvent],
        *,
        source: EventSource | str = EventSource.system,
        actor: str | None = None,
        check: bool = True,
    ) -> str:
        """The ``:events`` parameter. ``check`` validates names, sources, actors, user ids and
        that props are JSON objects (skip it only for events the product builds itself). The
        props size limit is the database's CHECK constraint (measuring each props here would
        serialise it twice); :func:`record` measures its one event first."""
        return encode_rows(self.rows(events, source=source, actor=actor, check=check))

    def rows(
        self,
        events: Iterable[NewEvent],
        *,
        source: EventSource | str = EventSource.system,
        actor: str | None = None,
        check: bool = True,
    ) -> list[list[Any]]:
        """The elements of the ``:events`` array (see :meth:`encode`), to be joined with
        others (e.g. :func:`incoming_event_row`) and encoded once by :func:`encode_rows`."""
        sqlite = self.dialect == "sqlite"
        default_source = check_source(source).value if check else str(source)
        if check:
            _check_actor(actor)
        rows: list[list[Any]] = []
        for ev in events:
            src = default_source if ev.source is None else str(ev.source)
            act = actor if ev.actor is None else ev.actor
            props = ev.props
            if check:
                if ev.name not in _VALID_NAMES:
                    check_name(ev.name)
                    if len(_VALID_NAMES) < 10_000:
                        _VALID_NAMES.add(ev.name)
                if ev.source is not None:
                    src = check_source(ev.source).value
                if ev.actor is not None:
                    _check_actor(act)
                if props is not None and not isinstance(props, dict):
                    if not isinstance(props, Mapping):
                        raise InvalidInput("event props must be a JSON object")
                    props = dict(props)
                _check_dedupe_key(ev.dedupe_key)
                if ev.user_id is not None and (
                    isinstance(ev.user_id, bool) or not isinstance(ev.user_id, int)
                ):
                    raise InvalidInput(f"user id {ev.user_id!r} is not an integer")
            at = None
            if ev.at is not None:
                if ev.at.tzinfo is None:
                    raise InvalidInput("naive datetime given; use an aware UTC datetime")
                at = _sqlite_time(ev.at) if sqlite else ev.at.isoformat()
            row = [ev.user_id, ev.name, props or {}, src, act, at, ev.dedupe_key]
            m = ev.message
            if m is not None:
                text_ = m.text[:MESSAGE_MAX_CHARS] if m.text is not None else None
                row += [m.kind, text_, m.message_id, m.direction]
            rows.append(row)
        return rows


def encode_rows(rows: list[list[Any]]) -> str:
    """The ``:events`` parameter from its elements (:meth:`BatchInsert.rows`,
    :func:`incoming_event_row`)."""
    try:
        return _ENCODE(rows)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"event props cannot be stored as JSON: {e}") from e


def incoming_event_row(
    user_id: int,
    name: str,
    props: dict[str, Any],
    source: str,
    message: tuple[str, str | None, int | None] | None,
) -> list[Any]:
    """One element of the ``:events`` array built straight from trusted values: an event of
    the batch's time with, if ``message`` (kind, text, message id) is given, the user's message
    of the conversation. What ``NewEvent(user_id, name, props, source=source,
    message=NewMessage(*message))`` encodes to, without the object (the touch builds one per
    update)."""
    if message is None:
        return [user_id, name, props, source, None, None, None]
    kind, text_, message_id = message
    if text_ is not None and len(text_) > MESSAGE_MAX_CHARS:
        text_ = text_[:MESSAGE_MAX_CHARS]
    return [user_id, name, props, source, None, None, None, kind, text_, message_id, "in"]


#: One encoder for the whole array (``json.dumps`` with options builds one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
#: Names already validated (bounded: custom names are few in practice).
_VALID_NAMES: set[str] = set()


def check_props(props: Mapping[str, Any] | None) -> None:
    """Refuse props that are not a JSON object or pass the size limit (one line)."""
    if props is None:
        return
    if not isinstance(props, Mapping):
        raise InvalidInput("event props must be a JSON object")
    try:
        size = len(_ENCODE(dict(props)).encode())
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"event props cannot be stored as JSON: {e}") from e
    if size > PROPS_MAX_BYTES:
        raise InvalidInput(f"event props are {size} bytes; the limit is {PROPS_MAX_BYTES}")


def _bind_now(clause: TextClause) -> TextClause:
    return clause.bindparams(bindparam("now", type_=UTCDateTime()))


def _check_actor(actor: str | None) -> None:
    if actor is not None and (not isinstance(actor, str) or len(actor) > ACTOR_MAX_LENGTH):
        raise InvalidInput(f"actor must be text of at most {ACTOR_MAX_LENGTH} characters")


def _check_dedupe_key(key: str | None) -> None:
    if key is not None and (
        not isinstance(key, str) or not key or len(key) > DEDUPE_KEY_MAX_LENGTH
    ):
        raise InvalidInput(f"dedupe key must be 1–{DEDUPE_KEY_MAX_LENGTH} characters of text")


_INSERTS: dict[tuple[str, bool], BatchInsert] = {}


def batch_insert(dialect: str, *, dedupe: bool = False) -> BatchInsert:
    """The (cached) :class:`BatchInsert` of a dialect."""
    key = (dialect, dedupe)
    found = _INSERTS.get(key)
    if found is None:
        found = _INSERTS[key] = BatchInsert(dialect, dedupe=dedupe)
    return found


# -- the service -------------------------------------------------------------------------------
async def record_many(
    executor: Executor,
    events: Iterable[NewEvent],
    *,
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
    at: datetime | None = None,
    check: bool = True,
) -> int:
    """Write events in ONE statement per batch in the caller's transaction; returns how many
    were given (events whose ``dedupe_key`` was already used that day are skipped silently)."""
    events = list(events)
    if not events:
        return 0
    if at is not None and at.tzinfo is None:
        raise InvalidInput("naive datetime given; use an aware UTC datetime")
    dedupe = any(ev.dedupe_key is not None for ev in events)
    insert = batch_insert(_dialect(executor), dedupe=dedupe)
    params = {
        "events": insert.encode(events, source=source, actor=actor, check=check),
        "now": at or utcnow(),
    }
    try:
        for stmt in insert.statements:
            await executor.execute(stmt, params)
    except IntegrityError as e:
        if "ck_events_props" in str(e.orig):
            raise InvalidInput(
                f"an event's props are not a JSON object of at most {PROPS_MAX_BYTES} bytes; "
                "nothing was recorded"
            ) from e
        raise
    return len(events)


async def record(
    executor: Executor,
    user_id: int | None,
    name: str,
    props: Mapping[str, Any] | None = None,
    *,
    source: EventSource | str,
    actor: str | None = None,
    at: datetime | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Write one event in the caller's transaction."""
    check_props(props)
    await record_many(
        executor,
        [NewEvent(user_id, name, props, dedupe_key=dedupe_key)],
        source=source,
        actor=actor,
        at=at,
    )
