"""One-time login links and the Telegram Login Widget.

A login link carries a random token (256 bits); only its SHA-256 is stored. It works once,
within ``RELOVE_CONSOLE_LOGIN_MINUTES`` (5 by default): consuming it is one ``UPDATE … WHERE
used_at IS NULL AND expires_at > now RETURNING``, so two clicks can never both succeed.

The Login Widget's answer is checked as core.telegram.org/widgets/login says: the fields but
``hash``, sorted, ``key=value`` joined by newlines, HMAC-SHA256 keyed by SHA-256 of the bot
token, compared in constant time; ``auth_date`` at most one day old. A checked answer is
recorded like a used link, so the same redirect URL cannot open a second session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.models import LoginToken
from relove.admins.service import check_admin_id
from relove.db.types import utcnow
from relove.errors import InvalidInput

WIDGET_MAX_AGE = timedelta(days=1)
#: widget clocks may run a little ahead of ours
WIDGET_CLOCK_SKEW = timedelta(minutes=5)


class LoginRefused(InvalidInput):
    """A login link or widget answer that does not open a session (its text says why)."""


def login_url(base: str, token: str) -> str:
    """The address of a login link (the console shows a button that uses it)."""
    return f"{base.rstrip('/')}/auth/link/{token}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def create_login_token(
    session: AsyncSession, admin_id: int, *, minutes: float = 5, now: datetime | None = None
) -> str:
    """A new one-time token for ``admin_id`` (the caller checks that they are an admin)."""
    check_admin_id(admin_id)
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(LoginToken(id=token_hash(token), admin_id=admin_id, created_at=now,
                           expires_at=now + timedelta(minutes=minutes)))
    # Old tokens are of no use to anyone: drop those expired a day ago (cheap, indexed).
    await session.execute(delete(LoginToken).where(LoginToken.expires_at < now - timedelta(days=2)))
    await session.flush()
    return token


async def consume_login_token(
    session: AsyncSession, token: str, *, now: datetime | None = None
) -> int:
    """The admin id of a valid token, marking it used; :class:`LoginRefused` otherwise."""
    now = now or utcnow()
    if not token or len(token) > 200:
        raise LoginRefused("this login link is not valid")
    result = cast(CursorResult[Any], await session.execute(
        update(LoginToken)
        .where(LoginToken.id == token_hash(token), LoginToken.used_at.is_(None),
               LoginToken.expires_at > now)
        .values(used_at=now)
        .returning(LoginToken.admin_id)
    ))
    admin_id = result.scalar_one_or_none()
    if admin_id is None:
        raise LoginRefused("this login link has expired or was already used; ask the bot for "
                           "a new one with /login")
    return int(admin_id)


def widget_check(data: Mapping[str, str], bot_token: str, *, now: datetime | None = None) -> int:
    """The Telegram user id of a genuine, fresh Login Widget answer; :class:`LoginRefused`
    otherwise."""
    now = now or utcnow()
    received = data.get("hash", "")
    fields = {k: v for k, v in data.items() if k != "hash"}
    if not received or "id" not in fields or "auth_date" not in fields:
        raise LoginRefused("the Telegram login answer is incomplete")
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    key = hashlib.sha256(bot_token.encode()).digest()
    expected = hmac.new(key, check.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received.lower()):
        raise LoginRefused("the Telegram login answer is not signed by this bot")
    try:
        auth_date = datetime.fromtimestamp(int(fields["auth_date"]), tz=now.tzinfo)
        user_id = int(fields["id"])
    except (ValueError, OverflowError, OSError):
        raise LoginRefused("the Telegram login answer is malformed") from None
    if auth_date < now - WIDGET_MAX_AGE or auth_date > now + WIDGET_CLOCK_SKEW:
        raise LoginRefused("the Telegram login answer is too old; log in again")
    return check_admin_id(user_id)


async def use_widget_answer(
    session: AsyncSession, data: Mapping[str, str], bot_token: str, *, now: datetime | None = None
) -> int:
    """:func:`widget_check`, and the answer recorded as used (a replay is refused)."""
    now = now or utcnow()
    user_id = widget_check(data, bot_token, now=now)
    row = LoginToken(id=token_hash("widget:" + data["hash"].lower()), admin_id=user_id,
                     created_at=now, expires_at=now + WIDGET_MAX_AGE + WIDGET_CLOCK_SKEW,
                     used_at=now)
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise LoginRefused("this Telegram login answer was already used; log in again") from None
    return user_id
