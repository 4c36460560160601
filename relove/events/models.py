"""History tables: ``events`` (what happened, by whom, to which user) and ``messages`` (the
conversation in both directions, kept ``RELOVE_MESSAGES_RETENTION_DAYS``).

On PostgreSQL ``events`` is partitioned by month on ``at`` (see :mod:`relove.events.partitions`):
the declarations below describe its columns and indexes for queries; the migration
(``0004_events``) creates the partitioned table itself. Neither table has a foreign key to
``users``: history is written on hot paths without a lookup per row, ``user.deleted`` outlives its
user, and ``/forget`` deletes a user's rows explicitly.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import JSONDocument, UTCDateTime

#: The largest ``props`` document, as JSON text in bytes (a CHECK constraint on both databases).
PROPS_MAX_BYTES = 8 * 1024
#: Longest event name (``object.action``), actor and dedupe key.
NAME_MAX_LENGTH = 100
ACTOR_MAX_LENGTH = 200
DEDUPE_KEY_MAX_LENGTH = 200

#: BIGINT on PostgreSQL; on SQLite an ``INTEGER PRIMARY KEY`` (the rowid) that is never reused.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    """One thing that happened: ``name`` (``object.action``), ``props``, who did it (``source``,
    ``actor``) and when (``at``). ``user_id`` is NULL for events about no one user
    (``broadcast.started``, ``import.completed``)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), nullable=False)
    props: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, nullable=False, server_default="{}"
    )
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX_LENGTH))
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    dedupe_key: Mapped[str | None] = mapped_column(String(DEDUPE_KEY_MAX_LENGTH))

    def to_dict(self) -> dict[str, Any]:
        return event_dict(self)


def event_dict(row: Any) -> dict[str, Any]:
    """An event row (ORM object or result row) as JSON-ready values."""
    return {
        "id": row.id,
        "user_id": row.user_id,
        "name": row.name,
        "props": dict(row.props or {}),
        "source": row.source,
        "actor": row.actor,
        "at": row.at.isoformat(),
    }


class Message(Base):
    """One message of the conversation: ``direction`` ``in`` (the user wrote) or ``out`` (the bot
    or an operator answered). Broadcasts a user received are read from ``deliveries``."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    text: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX_LENGTH))


class ActivityWeek(Base):
    """The UTC days of one week (from Monday) on which a user did one of ``USER_ACTIONS``, as a
    mask (bit 0 Monday … bit 6 Sunday): written and deleted only by the database's triggers on
    ``events`` (see :mod:`relove.events.activity`), read by retention."""

    __tablename__ = "activity_weeks"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    days: Mapped[int] = mapped_column(SmallInteger, nullable=False)


_E, _M = Event.__table__, Message.__table__
# A user's timeline and conversation are read newest first, by (at, id).
Index("ix_events_user_id_at", _E.c.user_id, _E.c.at.desc(), _E.c.id.desc())
# ``user_id`` and ``id`` included on PostgreSQL: behavioural segments (``did …``) and funnel
# steps scan it index-only.
Index("ix_events_name_at", _E.c.name, _E.c.at, postgresql_include=["user_id", "id"])
Index("ix_messages_user_id_at", _M.c.user_id, _M.c.at.desc(), _M.c.id.desc())
Index("ix_messages_at", _M.c.at)
