"""The durable inbox of webhook updates (migration ``0011_inbox``).

``bot_inbox`` holds every update Telegram posted, keyed by ``update_id`` (a redelivery is a
no-op), with its *lane*: the user it comes from (else its chat, else 0). Rows are processed in
``update_id`` order per lane and kept a while after (``processed_at``) so late redeliveries
stay deduplicated, then pruned. ``bot_inbox_lanes`` holds one row per lane being processed:
the instance that owns it and until when (a lease, renewed while it works).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import UTCDateTime


class InboxUpdate(Base):
    __tablename__ = "bot_inbox"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    lane: Mapped[int] = mapped_column(BigInteger, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: its touch (user upsert, events, incoming message) is committed: a take-over after a
    #: crash touches it again without the events
    touched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        # the unprocessed updates of a lane, oldest first (small: processed rows leave it)
        Index(
            "ix_bot_inbox_pending", "lane", "update_id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
        Index("ix_bot_inbox_processed_at", "processed_at"),
    )  # fmt: skip


class InboxLane(Base):
    __tablename__ = "bot_inbox_lanes"

    lane: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
