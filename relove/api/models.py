"""Tables of the REST API: ``api_tokens`` (hashed bearer tokens with scopes) and
``api_idempotency`` (the first response to each ``Idempotency-Key``, kept for replay)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import UTCDateTime, utcnow

TOKEN_NAME_MAX = 64
IDEMPOTENCY_KEY_MAX = 255


class ApiToken(Base):
    """A bearer token. Only ``key_id`` (public, shown in lists) and the SHA-256 of the whole
    token are stored; the token itself is shown once, when it is created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX), nullable=False)
    key_id: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: granted scopes, space-separated (``users:read users:write``)
    scopes: Mapped[str] = mapped_column(Text, nullable=False)
    #: requests per second and burst of this token's bucket (NULL: the settings' defaults)
    rate_limit: Mapped[float | None] = mapped_column(Float)
    rate_burst: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # A name is unique among the tokens in use; a revoked token's name may be reused.
        Index(
            "uq_api_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "key_id": self.key_id,
            "scopes": self.scope_list,
            "rate_limit": self.rate_limit,
            "rate_burst": self.rate_burst,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class IdempotencyRecord(Base):
    """One ``Idempotency-Key`` of one token: ``running`` while its first request is in flight,
    then ``done`` with that request's response, replayed until ``expires_at``."""

    __tablename__ = "api_idempotency"

    token_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    #: SHA-256 of method, path, query and body: the same key with another request is refused
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(8), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_api_idempotency_expires_at", "expires_at"),)
