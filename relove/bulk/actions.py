"""One marker operation applied to every user a filter matches (the console's bulk actions).

Each user is changed through the marker service — the same atomic single-statement operation
as one edit, so concurrent writers lose nothing and every change is recorded like any other —
in transactions of ``batch`` users; each change is a ``marker.changed`` event by ``source`` /
``actor``. The ids are read first; a user who stops matching the
filter meanwhile is still changed (the snapshot is what the operator saw counted)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.errors import InvalidInput, NotFound
from relove.events import EventSource
from relove.segments.service import FilterInput, count_users, find_user_ids
from relove.users import service
from relove.users.paths import parse_path

BATCH = 500
TAGS_KEY = "tags"


class BulkOp(enum.StrEnum):
    set = "set"
    unset = "unset"
    add_tag = "add_tag"
    remove_tag = "remove_tag"


@dataclass(frozen=True)
class BulkResult:
    op: BulkOp
    matched: int
    changed: int


def _operation(op: BulkOp, key: str, value: Any, who: dict[str, Any]
               ) -> Callable[[AsyncSession, int], Awaitable[Any]]:
    if op is BulkOp.set:
        parse_path(key)
        return lambda s, uid: service.set_values(s, uid, {key: value}, **who)
    if op is BulkOp.unset:
        parse_path(key)
        return lambda s, uid: service.unset(s, uid, [key], **who)
    tag = value.strip() if isinstance(value, str) else ""
    if not tag:
        raise InvalidInput("a tag must not be empty")
    if op is BulkOp.add_tag:
        return lambda s, uid: service.add_to_list(s, uid, TAGS_KEY, tag, **who)
    return lambda s, uid: service.remove_from_list(s, uid, TAGS_KEY, tag, **who)


async def apply_to_filter(
    sessions: async_sessionmaker[AsyncSession],
    flt: FilterInput | None,
    op: BulkOp | str,
    key: str = "",
    value: Any = None,
    *,
    max_users: int,
    batch: int = BATCH,
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> BulkResult:
    """Apply ``op`` to every user matching ``flt`` (everyone when None); refused (nothing
    changed) past ``max_users``."""
    op = BulkOp(op)
    operation = _operation(op, key, value, {"source": source, "actor": actor})
    async with sessions() as session:
        matched = await count_users(session, flt)
        if matched > max_users:
            raise InvalidInput(
                f"{matched} users match; bulk actions change at most {max_users} at once — "
                "narrow the filter"
            )
        ids = await find_user_ids(session, flt)
    changed = 0
    for start in range(0, len(ids), batch):
        async with sessions.begin() as session:
            for user_id in ids[start:start + batch]:
                try:
                    await operation(session, user_id)
                except NotFound:  # forgotten (/forget) since the ids were read
                    continue
                changed += 1
    return BulkResult(op, matched, changed)
