"""Several changes to one user as one unit — the REST API's ``PATCH /users/{id}`` and each item
of ``POST /users:batch``: operations on ``markers`` and ``context`` (``$set``, ``$set_once``,
``$unset``, ``$inc``, ``$add``, ``$remove``), ``gender`` and ``is_active``.

Each operation is the marker service's atomic statement (no read-modify-write), all of them in
the caller's transaction, each recording its events with the caller's source and actor. The
change is checked before any SQL runs: key rules, value types, and no path touched by two
operations (``$set: {a: 1}`` with ``$unset: [a]`` is ambiguous and refused).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy import Column, TextualSelect, bindparam, column, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relove.db.models import User
from relove.db.raw import json_text
from relove.db.types import UTCDateTime, utcnow
from relove.errors import DocumentTooLarge, InvalidInput, NotFound, ReloveError
from relove.events.catalog import MARKER_CHANGED, EventSource
from relove.users import lifecycle, service
from relove.users.changes import Origin, _pg_props, origin
from relove.users.paths import Document, check_user_id, check_value, parse_path

Scalar = str | int | float | bool


#: the empty operations' shared (read-only) value
_NONE: Mapping[str, Any] = MappingProxyType({})


class DocumentOps(NamedTuple):
    """Operations on one document. A named tuple (immutable): a batch builds one or two per
    item, and a frozen dataclass cost 3× as much to build (docs/benchmarks.md, API round 4)."""

    set: Mapping[str, Any] = _NONE
    set_once: Mapping[str, Any] = _NONE
    unset: Sequence[str] = ()
    inc: Mapping[str, int | float] = _NONE
    add: Mapping[str, Sequence[Scalar]] = _NONE
    remove: Mapping[str, Sequence[Scalar]] = _NONE

    def __bool__(self) -> bool:
        return self is not NO_OPS and any(self)


NO_OPS: DocumentOps = DocumentOps()


class UserChange(NamedTuple):
    markers: DocumentOps = NO_OPS
    context: DocumentOps = NO_OPS
    gender: str | None = None
    is_active: bool | None = None

    def __bool__(self) -> bool:
        return bool(self.markers or self.context or self.gender or self.is_active is not None)


#: the operations' names, in :class:`DocumentOps`' field order
_OP_NAMES = ("$set", "$set_once", "$unset", "$inc", "$add", "$remove")


def _check_ops(doc: str, ops: DocumentOps) -> None:
    if ops is NO_OPS:
        return
    used = [(op, keys) for op, keys in zip(_OP_NAMES, ops, strict=True) if keys]
    if not used:
        return
    if len(used) == 1:  # one operation: no path can be changed by two (the common item)
        for key in used[0][1]:
            parse_path(key)
    else:
        owners: dict[tuple[str, ...], str] = {}
        for op, keys in used:
            for key in keys:
                path = parse_path(key)
                for other, other_op in owners.items():
                    if other_op != op and (
                        path[: len(other)] == other or other[: len(path)] == path
                    ):
                        raise InvalidInput(
                            f"{doc}.{key} is changed by both {other_op} and {op}; "
                            "send them in separate requests"
                        )
                owners[path] = op
    for key, delta in ops.inc.items():
        # (an int is not passed to isfinite: past 1e308 that raises OverflowError)
        if isinstance(delta, bool) or not (
            isinstance(delta, int) or (isinstance(delta, float) and math.isfinite(delta))
        ):
            raise InvalidInput(f"$inc of {doc}.{key} needs a finite number")
    for op, lists in (("$add", ops.add), ("$remove", ops.remove)):
        for key, values in lists.items() if lists else ():
            if not values:
                raise InvalidInput(f"{op} of {doc}.{key} needs at least one value")
            for v in values:
                if not isinstance(v, str | int | float | bool):
                    raise InvalidInput(f"{op} of {doc}.{key}: list elements must be scalars")


def check_change(change: UserChange) -> None:
    """Refuse a change that is empty, malformed or ambiguous — before anything runs."""
    if not change:
        raise InvalidInput("nothing to change")
    _check_ops("markers", change.markers)
    _check_ops("context", change.context)


async def _apply_ops(
    session: AsyncSession,
    user_id: int,
    doc: Document,
    ops: DocumentOps,
    who: dict[str, Any],
) -> None:
    if ops.set:
        await service.set_values(session, user_id, ops.set, doc=doc, **who)
    if ops.set_once:
        await service.set_once(session, user_id, ops.set_once, doc=doc, **who)
    if ops.unset:
        await service.unset(session, user_id, ops.unset, doc=doc, **who)
    for key, delta in ops.inc.items():
        await service.increment(session, user_id, key, delta, doc=doc, **who)
    for key, values in ops.add.items():
        await service.add_to_list(session, user_id, key, *values, doc=doc, **who)
    for key, values in ops.remove.items():
        await service.remove_from_list(session, user_id, key, *values, doc=doc, **who)


async def apply_change(
    session: AsyncSession,
    user_id: int,
    change: UserChange,
    *,
    source: EventSource | str,
    actor: str | None,
) -> None:
    """Apply a checked change in the caller's transaction (:class:`NotFound` if no user)."""
    check_change(change)
    who: dict[str, Any] = {"source": source, "actor": actor}
    await _apply_ops(session, user_id, "markers", change.markers, who)
    await _apply_ops(session, user_id, "context", change.context, who)
    if change.gender is not None:
        await lifecycle.set_gender(session, user_id, change.gender, **who)
    if change.is_active is not None:
        await lifecycle.set_active(session, user_id, change.is_active, **who)


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    user_id: int
    error: ReloveError | None = None


async def apply_batch(
    session: AsyncSession,
    items: Sequence[tuple[int, UserChange]],
    *,
    source: EventSource | str,
    actor: str | None,
) -> list[ItemResult]:
    """Apply each item as a unit: an item that fails changes nothing and the others still
    apply (partial success). The caller commits.

    The common case — every item applies — runs all items in ONE savepoint (one statement per
    operation, no per-item round trips). Only when an item fails is that savepoint rolled
    back and the items redone one savepoint each, so the failure is pinned to its item."""
    results: list[ItemResult | None] = [None] * len(items)
    valid: list[int] = []
    for index, (user_id, change) in enumerate(items):
        try:
            check_change(change)
        except ReloveError as e:
            results[index] = ItemResult(index, user_id, e)
        else:
            valid.append(index)
    if valid and await _set_markers_at_once(session, items, valid, results, source, actor):
        return [r for r in results if r is not None]
    if valid:
        try:
            async with session.begin_nested():
                for index in valid:
                    user_id, change = items[index]
                    await _apply_item(session, user_id, change, source=source, actor=actor)
        except ReloveError:
            for index in valid:
                user_id, change = items[index]
                try:
                    async with session.begin_nested():
                        await _apply_item(session, user_id, change, source=source, actor=actor)
                except ReloveError as e:
                    results[index] = ItemResult(index, user_id, e)
                else:
                    results[index] = ItemResult(index, user_id)
        else:
            for index in valid:
                results[index] = ItemResult(index, items[index][0])
    return [r for r in results if r is not None]


def _markers_at_once_sql(returning: Sequence[str] = ()) -> str:
    """The statement; with ``returning`` (one item: ``PATCH``) it answers ONE row — ``bad``,
    then those columns of the updated user (all NULL when nothing was updated)."""
    ret = "".join(f", users.{c} AS r_{c}" for c in returning)
    final = (
        "SELECT (SELECT bad FROM old) AS bad" + "".join(f", upd.r_{c}" for c in returning)
        + " FROM (SELECT 1) AS one LEFT JOIN upd ON true"
        if returning
        else "SELECT i, NULL AS bad FROM upd UNION ALL SELECT i, bad FROM old WHERE bad IS NOT NULL"
    )  # fmt: skip
    return f"""
WITH items AS (SELECT x.i, x.u, x.v, x.d FROM jsonb_to_recordset(CAST(:items AS jsonb))
                AS x(i integer, u bigint, v jsonb, d jsonb)),
old AS (SELECT users.id AS old_id, users.markers AS old_doc, items.i, items.v, items.d,
               (SELECT array_agg(k) FROM jsonb_object_keys(items.d) AS k
                WHERE jsonb_typeof(users.markers -> k) NOT IN ('number', 'null')) AS bad
        FROM users JOIN items ON users.id = items.u ORDER BY users.id FOR UPDATE OF users),
upd AS (UPDATE users SET markers = users.markers || old.v || COALESCE(
            (SELECT jsonb_object_agg(n.key, to_jsonb(
                        COALESCE(CAST(users.markers ->> n.key AS numeric), 0)
                        + CAST(n.value #>> '{{}}' AS numeric)))
             FROM jsonb_each(old.d) AS n), '{{}}'::jsonb),
            updated_at = CAST(:now AS timestamptz)
        FROM old WHERE users.id = old.old_id AND old.bad IS NULL
        RETURNING users.id AS uid, old.i, old.old_doc, users.markers AS new_doc,
                  old.v || old.d AS changed{ret}),
ev AS (INSERT INTO events (user_id, name, props, source, actor, at)
       SELECT upd.uid, CAST(:name AS text), {_pg_props("(upd.old_doc #> k.path)",
                                                      "(upd.new_doc #> k.path)")},
              CAST(:src AS text), CAST(:actor AS text), CAST(:now AS timestamptz)
       FROM upd CROSS JOIN LATERAL (SELECT key, ARRAY[key] AS path
                                    FROM jsonb_object_keys(upd.changed) AS key) AS k
       WHERE (upd.old_doc #> k.path) IS DISTINCT FROM (upd.new_doc #> k.path))
{final}
"""


#: one statement for a batch whose items only ``$set`` and ``$inc`` top-level markers
#: (PostgreSQL): the users locked, updated and their ``marker.changed`` events written as for
#: one user (see relove.users.changes). Each item brings ``v`` (its ``$set``) and ``d`` (its
#: ``$inc`` deltas); an item whose ``$inc`` meets a value that is not a number is left unchanged
#: and returned with those keys (``bad``), as the per-item path refuses it; users not found
#: are in neither list.
_MARKERS_AT_ONCE_SQL = _markers_at_once_sql()


@functools.lru_cache(maxsize=16)
def _returning_statement(columns: tuple[Column[Any], ...]) -> TextualSelect:
    """Built once per column list: parsing the statement's text cost a sixth of a PATCH."""
    return (
        text(_markers_at_once_sql([c.name for c in columns]))
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(column("bad"), *(column(f"r_{c.name}", c.type) for c in columns))
    )


_AT_ONCE_STATEMENT = text(_MARKERS_AT_ONCE_SQL).bindparams(bindparam("now", type_=UTCDateTime()))


def _not_a_number(change: UserChange, bad: Sequence[str]) -> InvalidInput:
    """The per-item path's refusal: the first ``$inc`` key (in the item's order) refused."""
    key = next(k for k in change.markers.inc if k in bad)
    return InvalidInput(f"markers.{key} is not a number; nothing was changed")


def _params(payload: list[dict[str, Any]], who: Origin) -> dict[str, Any]:
    return {"items": json_text(payload), "now": utcnow(),
            "name": MARKER_CHANGED, "src": who.source, "actor": who.actor}  # fmt: skip


async def apply_change_returning(
    session: AsyncSession,
    user_id: int,
    change: UserChange,
    columns: Sequence[Column[Any]],
    *,
    source: EventSource | str,
    actor: str | None,
) -> Sequence[Any] | None:
    """:func:`apply_change` in ONE statement that also returns ``columns`` of the changed user
    (no read-back), when it can: on PostgreSQL, for a change that only ``$set``s / ``$inc``s
    top-level markers. None (nothing done) otherwise: the caller applies it the usual way."""
    check_change(change)
    if session.get_bind().dialect.name != "postgresql":
        return None
    plan = returning_plan(user_id, change, columns, source=source, actor=actor)
    if plan is None:
        return None
    try:
        row = (await session.execute(*plan)).one()
    except IntegrityError as e:
        if is_too_large(e.orig):
            raise markers_too_large(user_id) from e
        raise
    return returning_row(row, user_id, change)


def returning_plan(
    user_id: int,
    change: UserChange,
    columns: Sequence[Column[Any]],
    *,
    source: EventSource | str,
    actor: str | None,
) -> tuple[TextualSelect, dict[str, Any]] | None:
    """The statement (built once per column list) and its values that apply a checked change
    and return ``columns`` of the user (PostgreSQL), or None when the change is not one it can
    apply (see :func:`apply_change_returning`). Its row goes through :func:`returning_row`."""
    try:
        item = _at_once_item(0, user_id, change)
        who = origin(source, actor)
    except ReloveError:
        return None  # the usual way refuses it with its own message
    if item is None:
        return None
    return _returning_statement(tuple(columns)), _params([item], who)


def returning_row(row: Sequence[Any], user_id: int, change: UserChange) -> Sequence[Any]:
    """The changed user's columns from :func:`returning_plan`'s row, or the refusal."""
    if row[0] is not None:
        raise _not_a_number(change, row[0])
    if row[1] is None:
        raise NotFound(f"user {user_id} not found")
    return tuple(row[1:])


def is_too_large(error: object) -> bool:
    """The database refused a document over its size limit (its check constraint)."""
    return "ck_users_markers_size" in str(error)


def markers_too_large(user_id: int) -> DocumentTooLarge:
    return DocumentTooLarge(
        f"markers of user {user_id} would exceed its size limit; nothing was changed"
    )


def _at_once_item(index: int, user_id: int, change: UserChange) -> dict[str, Any] | None:
    """The statement's item for a checked change it can apply (only ``$set``/``$inc`` of
    top-level markers), else None. Raises what the per-item path would refuse the values with.
    (Runs once per item of a batch: the tests are ordered cheapest first.)"""
    m = change.markers
    if (
        change.context or change.gender is not None or change.is_active is not None
        or m.set_once or m.unset or m.add or m.remove or not (m.set or m.inc)
    ):  # fmt: skip
        return None
    for keys in (m.set, m.inc):
        for key in keys:
            if "." in key:  # a nested path (the keys were checked: a dot is the separator)
                return None
    check_user_id(user_id)
    for delta in m.inc.values():
        check_value(delta)
    for value in m.set.values():
        check_value(value)  # what to_json checks; the payload is JSON-encoded as a whole
    return {"i": index, "u": user_id, "v": _plain(m.set), "d": _plain(m.inc)}


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """A dict for the JSON encoder (the shared empty value is read-only, not a dict)."""
    return values if type(values) is dict else dict(values)


async def _set_markers_at_once(
    session: AsyncSession,
    items: Sequence[tuple[int, UserChange]],
    valid: list[int],
    results: list[ItemResult | None],
    source: EventSource | str,
    actor: str | None,
) -> bool:
    """The common batch — every item only ``$set``s / ``$inc``s top-level markers of distinct
    users — as ONE statement on PostgreSQL, with the per-item results of the per-item path.
    False (nothing done) when the batch is not that, or when the statement fails (a document
    over its size limit): the caller then goes item by item."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    payload: list[dict[str, Any]] = []
    seen: set[int] = set()
    try:
        for index in valid:
            user_id, change = items[index]
            item = _at_once_item(index, user_id, change)
            if item is None or user_id in seen:
                return False
            seen.add(user_id)
            payload.append(item)
        who = origin(source, actor)
    except ReloveError:
        return False
    try:
        async with session.begin_nested():
            rows = (await session.execute(_AT_ONCE_STATEMENT, _params(payload, who))).all()
    except IntegrityError:
        return False
    done = {row[0]: row[1] for row in rows}
    for index in valid:
        user_id, change = items[index]
        error: ReloveError | None = None
        if index not in done:
            error = NotFound(f"user {user_id} not found")
        elif done[index] is not None:
            error = _not_a_number(change, done[index])
        results[index] = ItemResult(index, user_id, error)
    return True


async def _apply_item(
    session: AsyncSession,
    user_id: int,
    change: UserChange,
    *,
    source: EventSource | str,
    actor: str | None,
) -> None:
    await apply_change(session, user_id, change, source=source, actor=actor)
    if not (change.markers or change.context):
        # markers/context operations already refuse a missing user (NotFound); gender and
        # is_active alone update nothing for one, so ask
        await _exists(session, user_id)


async def _exists(session: AsyncSession, user_id: int) -> None:
    found = await session.execute(select(User.id).where(User.id == user_id))
    if found.first() is None:
        raise NotFound(f"user {user_id} not found")


__all__ = [
    "NO_OPS",
    "DocumentOps",
    "ItemResult",
    "UserChange",
    "apply_batch",
    "apply_change",
    "apply_change_returning",
    "check_change",
    "is_too_large",
    "markers_too_large",
    "returning_plan",
    "returning_row",
]
