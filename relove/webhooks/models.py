"""Webhook tables: endpoints, deliveries (the outbox), attempts (the log) and the dispatcher's
cursor over ``events``.

The signing secret is stored as it is (``whsec_…``): HMAC signs with the key itself, so a hash
could not sign, and encrypting it with a key kept beside the database in the same settings would
protect nothing the database's own access control does not. It is shown once (on ``add`` and
``rotate-secret``), never listed, never logged.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import UTCDateTime

#: BIGINT on PostgreSQL, the rowid on SQLite.
_Id = BigInteger().with_variant(Integer(), "sqlite")
#: a JSON list (its own type instance: the shared JSONDocument is tracked as a mutable dict)
_JSONList = JSONB().with_variant(JSON(), "sqlite")

URL_MAX = 2000
DESCRIPTION_MAX = 500
#: The first bytes of a receiver's answer kept in the attempts log.
BODY_MAX = 2048


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  #: waiting for its (next) attempt
    sending = "sending"  #: claimed by a worker until ``locked_until``
    delivered = "delivered"  #: the receiver answered 2xx
    failed = "failed"  #: attempts exhausted, or the endpoint answered 410


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(URL_MAX), nullable=False)
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX))
    secret: Mapped[str] = mapped_column(String(100), nullable=False)
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: event-name patterns: ``user.*``, ``marker.changed``, ``*``
    events: Mapped[list[str]] = mapped_column(_JSONList, nullable=False)
    filter: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: the first failure since the last success (disabled after RELOVE_WEBHOOKS_DISABLE_AFTER_DAYS)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: events up to this id happened before the endpoint existed and are not delivered to it
    from_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    def to_dict(self) -> dict[str, Any]:
        """The endpoint as JSON-ready values, WITHOUT its secrets."""
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "events": list(self.events or []),
            "filter": self.filter,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "rotating_until": (
                self.previous_secret_until.isoformat()
                if self.previous_secret and self.previous_secret_until else None
            ),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class WebhookDelivery(Base):
    """One message for one endpoint. ``msg_id`` is the ``webhook-id`` header (``evt_<event id>``),
    the same on every attempt and replay, so a receiver can drop duplicates. ``body`` is the exact
    JSON sent (built once, so every attempt carries the same bytes)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    msg_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_name: Mapped[str] = mapped_column(String(100), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("endpoint_id", "msg_id", name="uq_webhook_deliveries_msg"),)


class WebhookAttempt(Base):
    """One POST: the answer's status (NULL: no answer), the error, latency, the first 2 KB."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str | None] = mapped_column(Text)


class WebhookCursor(Base):
    """The dispatcher's durable position in ``events`` (one row, id 1): every event up to
    ``last_event_id`` has its deliveries."""

    __tablename__ = "webhook_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


Index(
    "ix_webhook_deliveries_due",
    WebhookDelivery.__table__.c.status,
    WebhookDelivery.__table__.c.next_attempt_at,
)
Index(
    "ix_webhook_deliveries_endpoint",
    WebhookDelivery.__table__.c.endpoint_id,
    WebhookDelivery.__table__.c.id,
)
Index("ix_webhook_attempts_delivery", WebhookAttempt.__table__.c.delivery_id)
