"""Admins and their roles. ``RELOVE_ADMIN_IDS`` are owners whatever the table says; the table
adds operators, viewers and more owners. The session is the caller's; writers flush."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.models import Admin, ConsoleSession, Role
from relove.config import Settings
from relove.errors import InvalidInput, NotFound

MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class AdminInfo:
    id: int
    role: Role
    #: True for RELOVE_ADMIN_IDS (owners by configuration, not removable here)
    configured: bool
    note: str | None = None
    created_at: datetime | None = None
    created_by: int | None = None


def parse_role(value: str | Role) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {value!r}; expected one of {names}") from None


def check_admin_id(user_id: int) -> int:
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id <= MAX_ID:
        raise InvalidInput(f"{user_id!r} is not a Telegram user id")
    return user_id


async def role_of(session: AsyncSession, settings: Settings, user_id: int) -> Role | None:
    """The user's role, or None for someone who is not an admin."""
    if user_id in settings.admin_ids:
        return Role.owner
    return await session.scalar(select(Admin.role).where(Admin.id == user_id))


async def list_admins(session: AsyncSession, settings: Settings) -> list[AdminInfo]:
    """Configured owners first, then the table's admins by role and id."""
    rows: Sequence[Admin] = (await session.execute(select(Admin))).scalars().all()
    stored = {a.id: a for a in rows}
    out = [
        AdminInfo(uid, Role.owner, True, stored[uid].note if uid in stored else None)
        for uid in sorted(set(settings.admin_ids))
    ]
    out += [
        AdminInfo(a.id, a.role, False, a.note, a.created_at, a.created_by)
        for a in sorted(rows, key=lambda a: (-a.role.rank, a.id))
        if a.id not in settings.admin_ids
    ]
    return out


async def add_admin(
    session: AsyncSession,
    user_id: int,
    role: Role | str,
    *,
    note: str | None = None,
    by: int | None = None,
) -> Admin:
    """Add an admin or change the role of one."""
    check_admin_id(user_id)
    role = parse_role(role)
    if note is not None:
        note = note.strip()[:200] or None
    admin = await session.get(Admin, user_id)
    if admin is None:
        admin = Admin(id=user_id, role=role, note=note, created_by=by)
        session.add(admin)
    else:
        admin.role = role
        if note is not None:
            admin.note = note
    await session.flush()
    return admin


async def remove_admin(session: AsyncSession, settings: Settings, user_id: int) -> None:
    """Remove an admin; their console sessions end at once."""
    if user_id in settings.admin_ids:
        raise InvalidInput(
            f"{user_id} is an owner through RELOVE_ADMIN_IDS; remove it from that setting"
        )
    admin = await session.get(Admin, user_id)
    if admin is None:
        raise NotFound(f"admin {user_id} not found")
    await session.delete(admin)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.admin_id == user_id))
    await session.flush()
