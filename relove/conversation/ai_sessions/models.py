"""Tables of AI sessions: ``ai_sessions`` (one row per session: who, which mode, its state and
result) and ``ai_session_turns`` (its messages, one row each, numbered).

At most one session per user is ``active``: a partial unique index says so on both databases.
``lease_until`` is a short claim one message takes while the model answers, so two messages
of one session (two taps, two bot processes) are answered one after the other, never both on
the same turn.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import JSONDocument, UTCDateTime, utcnow


class SessionStatus(enum.StrEnum):
    active = "active"
    completed = "completed"  #: ended with a validated result
    abandoned = "abandoned"  #: /stop, /cancel, idle, another mode started
    failed = "failed"  #: the model's result did not validate, even after the repair retry


class AISession(Base):
    __tablename__ = "ai_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mode: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="active")
    turn_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(20))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    __table_args__ = (
        Index("ix_ai_sessions_user_id", "user_id"),
        Index(
            "uq_ai_sessions_one_active",
            "user_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )


class AISessionTurn(Base):
    __tablename__ = "ai_session_turns"

    session_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ai_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(10), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
