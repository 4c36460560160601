"""API tokens: create (shown once), list, revoke, and verify a bearer token.

A token reads ``rlv_<key id>_<secret>``. The key id (16 hex digits) is public: it finds the
row and names the token in lists and logs. Only the SHA-256 of the whole token is stored — the
secret has 256 random bits, so a fast hash is the right one here (a slow password hash would
protect nothing more and cost every request) — and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relove.api.models import TOKEN_NAME_MAX, ApiToken
from relove.db.types import utcnow
from relove.errors import InvalidInput, NotFound, Unauthorized

PREFIX = "rlv"

#: Every scope a token can hold; ``admin`` holds them all.
SCOPES: tuple[str, ...] = (
    "users:read",
    "users:write",
    "events:read",
    "events:write",
    "segments:read",
    "segments:write",
    "analytics:read",
    "broadcasts:read",
    "broadcasts:send",
    "webhooks:read",
    "webhooks:write",
    "admin",
)
ADMIN = "admin"

#: ``last_used_at`` is written at most this often per token and process (not on every request).
LAST_USED_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes an API request: a verified, unrevoked token."""

    token_id: int
    key_id: str
    name: str
    scopes: frozenset[str]
    rate_limit: float | None
    rate_burst: int | None

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    @property
    def actor(self) -> str:
        """The actor of this token's changes in the history (its name)."""
        return self.name


def parse_scopes(items: str | Iterable[str]) -> list[str]:
    """``"users:read,segments:*"`` (or a list) → the scopes, checked and expanded."""
    raw = items.replace(",", " ").split() if isinstance(items, str) else list(items)
    out: list[str] = []
    for item in raw:
        item = item.strip()
        if not item:
            continue
        if item.endswith(":*"):
            matched = [s for s in SCOPES if s.startswith(item[:-1])]
        else:
            matched = [item] if item in SCOPES else []
        if not matched:
            raise InvalidInput(f"unknown scope {item!r}; known: {', '.join(SCOPES)}")
        out += [s for s in matched if s not in out]
    if not out:
        raise InvalidInput("a token needs at least one scope")
    return out


def check_token_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("a token name must not be empty")
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(f"a token name must be at most {TOKEN_NAME_MAX} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise InvalidInput("a token name must not contain control characters")
    return name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, else None."""
    prefix, sep, rest = token.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != PREFIX or not sep or not sep2 or len(key_id) != 16 or not secret:
        return None
    return key_id, secret


async def create_token(
    session: AsyncSession,
    name: str,
    scopes: str | Iterable[str],
    *,
    rate_limit: float | None = None,
    rate_burst: int | None = None,
    created_by: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token; returns the row and the token text (shown once, never stored)."""
    name = check_token_name(name)
    granted = parse_scopes(scopes)
    if rate_limit is not None and not rate_limit > 0:
        raise InvalidInput("the rate limit must be a positive number of requests per second")
    if rate_burst is not None and rate_burst < 1:
        raise InvalidInput("the burst must be at least 1 request")
    existing = await session.scalar(
        select(ApiToken.id).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    )
    if existing is not None:
        raise InvalidInput(f"a token named {name!r} exists; revoke it first or pick another name")
    key_id = secrets.token_hex(8)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiToken(
        name=name,
        key_id=key_id,
        secret_hash=hash_token(token),
        scopes=" ".join(granted),
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as e:  # a concurrent create with the same name
        raise InvalidInput(f"a token named {name!r} exists") from e
    return row, token


async def list_tokens(session: AsyncSession, *, revoked: bool = False) -> Sequence[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if not revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return (await session.execute(stmt)).scalars().all()


async def revoke_token(session: AsyncSession, name_or_key_id: str) -> ApiToken:
    """Revoke the token in use with this name (or key id)."""
    row = await session.scalar(
        select(ApiToken).where(
            (ApiToken.name == name_or_key_id) | (ApiToken.key_id == name_or_key_id),
            ApiToken.revoked_at.is_(None),
        )
    )
    if row is None:
        raise NotFound(f"no token in use named {name_or_key_id!r}")
    row.revoked_at = utcnow()
    await session.flush()
    return row


async def verify_token(session: AsyncSession, token: str) -> Principal:
    """The principal of a valid, unrevoked token, else :class:`Unauthorized`."""
    parts = split_token(token)
    if parts is None:
        raise Unauthorized("malformed API token")
    row = (
        await session.execute(
            select(
                ApiToken.id, ApiToken.name, ApiToken.secret_hash, ApiToken.scopes,
                ApiToken.rate_limit, ApiToken.rate_burst,
            ).where(ApiToken.key_id == parts[0], ApiToken.revoked_at.is_(None))
        )
    ).first()
    # Compare even when no row matched, so timing does not tell a key id exists.
    stored = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(stored, hash_token(token)) or row is None:
        raise Unauthorized("unknown or revoked API token")
    return Principal(
        token_id=row.id, key_id=parts[0], name=row.name, scopes=frozenset(row.scopes.split()),
        rate_limit=row.rate_limit, rate_burst=row.rate_burst,
    )


async def mark_used(session: AsyncSession, token_id: int, now: datetime) -> None:
    """Set ``last_used_at`` unless it was set within :data:`LAST_USED_EVERY`."""
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
    )
