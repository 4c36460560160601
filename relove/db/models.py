"""The data model: one flexible ``User`` (see the architecture note)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    Index,
    MetaData,
    String,
    Table,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from relove.db.types import MutableJSONDocument, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Size limits of the JSON documents, as stored JSON text in bytes (enforced by CHECK constraints).
MARKERS_MAX_BYTES = 64 * 1024
CONTEXT_MAX_BYTES = 256 * 1024


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model here maps one Table (none maps a join or a select), so ``Model.__table__``
        # can go where SQLAlchemy's types want a Table (insert, update, ``.c``).
        __table__: ClassVar[Table]


class Gender(enum.StrEnum):
    male = "male"
    female = "female"
    unknown = "unknown"


class _UserFields:
    """What ``User`` and ``UserSnapshot`` share (both have the same attributes)."""

    __slots__ = ()
    id: int
    username: str | None
    first_name: str | None
    last_name: str | None
    is_active: bool
    gender: Gender | str
    context: Mapping[str, Any]
    markers: Mapping[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    last_seen_at: datetime | None

    @property
    def full_name(self) -> str:
        return _full_name(self)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values."""
        return _to_dict(self)


def _full_name(u: _UserFields | UserSnapshot) -> str:
    return " ".join(p for p in (u.first_name, u.last_name) if p) or (
        f"@{u.username}" if u.username else str(u.id)
    )


def _to_dict(u: _UserFields | UserSnapshot) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "is_active": u.is_active,
        "gender": Gender(u.gender).value if u.gender else Gender.unknown.value,
        "markers": dict(u.markers or {}),
        "context": dict(u.context or {}),
        "created_at": u.created_at.isoformat() if u.created_at else None,
        "updated_at": u.updated_at.isoformat() if u.updated_at else None,
        "last_seen_at": u.last_seen_at.isoformat() if u.last_seen_at else None,
    }


class User(_UserFields, Base):
    """A Telegram user and everything the product knows about them.

    ``markers`` holds properties operators segment on (city, VIP, interests, tags, source …);
    ``context`` holds what personalises the conversation (summary, relove_context,
    last_message …). New scenarios add keys there, never columns.

    Filtering: on PostgreSQL the note's ``User.markers['city'].astext == 'Москва'`` works; the
    portable form that runs on both databases is ``User.markers['city'].as_string() == 'Москва'``
    (``as_boolean()``, ``as_integer()``, ``as_float()`` likewise) — or the segment language.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(256))
    last_name: Mapped[str | None] = mapped_column(String(256))
    is_active: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), nullable=False
    )
    gender: Mapped[Gender] = mapped_column(
        Enum(
            Gender,
            name="gender",
            native_enum=False,
            create_constraint=True,
            length=7,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
        default=Gender.unknown,
        server_default=Gender.unknown.value,
        nullable=False,
    )
    context: Mapped[dict[str, Any]] = mapped_column(
        MutableJSONDocument, default=dict, server_default="{}", nullable=False
    )
    markers: Mapped[dict[str, Any]] = mapped_column(
        MutableJSONDocument, default=dict, server_default="{}", nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.current_timestamp(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        default=utcnow,
        onupdate=utcnow,
        server_default=func.current_timestamp(),
        nullable=False,
    )
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_users_last_seen_at", "last_seen_at"),
        Index("ix_users_created_at", "created_at"),
        Index(
            "ix_users_markers_gin",
            "markers",
            postgresql_using="gin",
            postgresql_ops={"markers": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, username={self.username!r})"


class FrozenDocument(Mapping[str, Any]):
    """A read-only JSON object, parsed from its text on first use.

    The touch path returns ``markers`` / ``context`` as JSON text; most handlers never look at
    them, so they are parsed only when read. In-place edits fail loudly (no ``__setitem__``).
    """

    __slots__ = ("_text", "_data")

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._data: Mapping[str, Any] | None = None

    def _parsed(self) -> Mapping[str, Any]:
        if self._data is None:
            loaded = json.loads(self._text) if self._text else {}
            self._data = MappingProxyType(loaded if isinstance(loaded, dict) else {})
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return f"FrozenDocument({dict(self._parsed())!r})"


class UserSnapshot(NamedTuple):
    """A user as stored at one moment, e.g. right after the touch of the update being handled.

    Read-only on purpose: ``markers`` and ``context`` are read-only mappings, so an in-place
    edit fails loudly instead of being silently lost. Change a user through the marker service
    (``relove.users.service``), which merges in SQL.
    """

    id: int
    username: str | None
    first_name: str | None
    last_name: str | None
    is_active: bool
    gender: Gender
    context: Mapping[str, Any]
    markers: Mapping[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    last_seen_at: datetime | None

    @property
    def full_name(self) -> str:
        return _full_name(self)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values."""
        return _to_dict(self)
