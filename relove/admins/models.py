"""Tables of the admins room: ``admins`` (roles), ``console_sessions`` (server-side sessions of
the console), ``login_tokens`` (one-time login links, and Login Widget answers already used)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import UTCDateTime, utcnow


class Role(enum.StrEnum):
    """What an admin may do; each role includes the ones below it."""

    viewer = "viewer"  # read everything, change nothing
    operator = "operator"  # markers, segments, broadcasts, live chat
    owner = "owner"  # admins, API tokens, webhooks

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.viewer: 0, Role.operator: 1, Role.owner: 2}


class Admin(Base):
    __tablename__ = "admins"

    #: the admin's Telegram user id
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="admin_role", native_enum=False, create_constraint=True, length=8,
             values_callable=lambda e: [m.value for m in e], validate_strings=True),
        nullable=False,
    )
    #: a note for the other admins (who this is); the Telegram name is shown when known
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.current_timestamp(), nullable=False
    )
    #: the admin who added this one (NULL from the shell)
    created_by: Mapped[int | None] = mapped_column(BigInteger)


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: the synchronizer token every state-changing request of this session must carry
    csrf: Mapped[str] = mapped_column(String(64), nullable=False)
    #: how the session was opened: link | widget
    via: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_console_sessions_admin_id", "admin_id"),)


class LoginToken(Base):
    """A one-time login link (SHA-256 of its token), or a Login Widget answer already used."""

    __tablename__ = "login_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_login_tokens_expires_at", "expires_at"),)


__all__ = ["Admin", "ConsoleSession", "LoginToken", "Role"]
