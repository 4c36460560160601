"""Tables of the broadcasts feature: ``broadcasts`` (campaigns) and ``deliveries``
(one per recipient).

A delivery's life: ``pending`` → ``sending`` (committed BEFORE the Bot API call) → ``sent`` |
``blocked`` | ``failed`` (committed after). A ``sending`` row found by a worker that takes over a
broadcast (the previous one died) becomes ``unknown``: the message may or may not have reached the
user, and it is never resent silently (``relove broadcast resend-unknown`` does it on request).

``deliveries.user_id`` references ``users.id`` with ON DELETE CASCADE: when a user asks the bot to
forget them (/forget), their delivery rows go too, and a pending one is simply never sent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import UTCDateTime, utcnow
from relove.telegram.message import MediaKind


def _json() -> JSON:
    # A fresh type object: relove.db.types.JSONDocument is tied to MutableDict (users' columns).
    return JSONB().with_variant(JSON(), "sqlite")


class BroadcastStatus(enum.StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    running = "running"
    paused = "paused"
    finished = "finished"
    cancelled = "cancelled"
    failed = "failed"


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    blocked = "blocked"
    failed = "failed"
    unknown = "unknown"


def _enum(cls: type[enum.StrEnum], name: str, length: int) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Broadcast(Base):
    """A campaign: one message (a Jinja2 template of Telegram HTML) for one audience filter."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    #: the message: an HTML template, an optional photo / document (URL or file_id), URL buttons
    text: Mapped[str] = mapped_column(Text, nullable=False)
    media_kind: Mapped[MediaKind | None] = mapped_column(_enum(MediaKind, "media_kind", 8))
    media: Mapped[str | None] = mapped_column(Text)
    #: rows of inline URL buttons: [[{"text": …, "url": …}, …], …]
    buttons: Mapped[list[Any]] = mapped_column(_json(), default=list, nullable=False)
    #: the audience, in the segment language
    filter: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[BroadcastStatus] = mapped_column(
        _enum(BroadcastStatus, "broadcast_status", 9),
        default=BroadcastStatus.draft,
        nullable=False,
    )
    #: rate, paid, max_errors, progress_chat_id / progress_message_id (bot flow) …
    options: Mapped[dict[str, Any]] = mapped_column(_json(), default=dict, nullable=False)
    #: why the broadcast paused or failed (error threshold, a fatal error …)
    reason: Mapped[str | None] = mapped_column(Text)
    #: Telegram id of the admin who created it; NULL from the CLI
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.current_timestamp(), nullable=False
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the worker currently sending it, and until when its claim holds (renewed by heartbeats)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_broadcasts_status_scheduled_at", "status", "scheduled_at"),)

    @property
    def paid(self) -> bool:
        return bool((self.options or {}).get("paid"))

    def __repr__(self) -> str:
        return f"Broadcast(id={self.id!r}, name={self.name!r}, status={self.status!r})"


class Delivery(Base):
    """One recipient of one broadcast."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status", 7),
        default=DeliveryStatus.pending,
        nullable=False,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: set with every status change, so a broadcast's current rate can be measured
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("broadcast_id", "user_id"),
        # keyset paging of a broadcast's pending rows, and counts per status
        Index("ix_deliveries_broadcast_id_status_id", "broadcast_id", "status", "id"),
        Index("ix_deliveries_broadcast_id_sent_at", "broadcast_id", "sent_at"),
        Index("ix_deliveries_user_id", "user_id"),
    )


__all__ = ["Broadcast", "BroadcastStatus", "Delivery", "DeliveryStatus", "MediaKind"]
