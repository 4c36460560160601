"""Atomic operations on a user's ``markers`` and ``context`` documents.

Every operation is ONE ``UPDATE … RETURNING`` statement whose new document is computed by the
database from the stored one: there is no read-modify-write in Python, so concurrent writers
never lose each other's keys. The caller owns the transaction (one session per update or
request, committed at the boundary).

Dotted paths reach nested objects (``profile.city``); a missing or non-object intermediate is
replaced by an object, the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, column, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from relove.db.types import JSONDocument, UTCDateTime, utcnow
from relove.errors import DocumentTooLarge, InvalidInput, NotFound
from relove.events.catalog import EventSource
from relove.users.changes import Origin, origin, update_statements
from relove.users.paths import (
    Document,
    check_document,
    check_user_id,
    check_value,
    get_path,
    parse_path,
    to_json,
)

Executor = AsyncSession | AsyncConnection
Scalar = str | int | float | bool
SYSTEM = Origin(EventSource.system.value)


@dataclass
class _Params:
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"


class _SQL:
    """SQL fragments of one dialect. Only bind-parameter names and fixed text go in the SQL."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    # -- values and paths ----------------------------------------------------------------------
    def json_value(self, p: _Params, value: Any) -> str:
        ref = p.add(to_json(value))
        return f"CAST({ref} AS jsonb)" if self.pg else f"json({ref})"

    def path(self, p: _Params, path: tuple[str, ...]) -> str:
        if self.pg:
            return f"CAST({p.add(list(path))} AS text[])"
        return p.add("$" + "".join(f'."{k}"' for k in path))

    def get(self, doc: str, path_sql: str) -> str:
        """The JSON value at a path (SQL NULL when missing)."""
        return f"({doc} #> {path_sql})" if self.pg else f"json({doc} -> {path_sql})"

    def json_type(self, doc: str, path_sql: str) -> str:
        return f"jsonb_typeof({doc} #> {path_sql})" if self.pg else f"json_type({doc}, {path_sql})"

    def number_types(self) -> str:
        return "('number', 'null')" if self.pg else "('integer', 'real', 'null')"

    # -- writes --------------------------------------------------------------------------------
    def set_paths(
        self, p: _Params, doc: str, leaves: dict[tuple[str, ...], str], *, once: bool = False
    ) -> str:
        """``doc`` with each path set to its SQL value (``once``: only where missing)."""
        if self.pg:
            tree: dict[str, Any] = {}
            for path, value_sql in leaves.items():
                if once:
                    value_sql = f"COALESCE({self.get(doc, self.path(p, path))}, {value_sql})"
                node = tree
                for key in path[:-1]:
                    child = node.setdefault(key, {})
                    if not isinstance(child, dict):
                        raise InvalidInput(f"conflicting keys at {'.'.join(path)!r}")
                    node = child
                if path[-1] in node:
                    raise InvalidInput(f"conflicting keys at {'.'.join(path)!r}")
                node[path[-1]] = value_sql
            return self._pg_merge(p, doc, tree)
        prefixes: dict[tuple[str, ...], None] = {}
        for path in leaves:
            for i in range(1, len(path)):
                prefixes[path[:i]] = None
        conflicts = prefixes.keys() & leaves.keys()
        if conflicts:
            raise InvalidInput(f"conflicting keys at {'.'.join(min(conflicts))!r}")
        out = doc
        if prefixes:
            pairs = []
            for prefix in sorted(prefixes, key=len):
                ps = self.path(p, prefix)
                pairs.append(
                    f"{ps}, CASE WHEN json_type({doc}, {ps}) = 'object' "
                    f"THEN json({doc} -> {ps}) ELSE json('{{}}') END"
                )
            out = f"json_set({doc}, {', '.join(pairs)})"
        fn = "json_insert" if once else "json_set"
        pairs = [f"{self.path(p, path)}, {value_sql}" for path, value_sql in leaves.items()]
        return f"{fn}({out}, {', '.join(pairs)})"

    def _pg_merge(self, p: _Params, doc: str, tree: dict[str, Any]) -> str:
        parts = []
        for key, node in tree.items():
            key_sql = f"CAST({p.add(key)} AS text)"
            if isinstance(node, dict):
                child = f"({doc} -> {key_sql})"
                child_obj = (
                    f"(CASE WHEN jsonb_typeof({child}) = 'object' "
                    f"THEN {child} ELSE '{{}}'::jsonb END)"
                )
                node = self._pg_merge(p, child_obj, node)
            parts.append(f"{key_sql}, {node}")
        return f"({doc} || jsonb_build_object({', '.join(parts)}))"

    def unset_paths(self, p: _Params, doc: str, paths: list[tuple[str, ...]]) -> str:
        if self.pg:
            out = doc
            for path in paths:
                out = f"({out} #- {self.path(p, path)})"
            return out
        return f"json_remove({doc}, {', '.join(self.path(p, path) for path in paths)})"

    def increment_value(self, p: _Params, doc: str, path_sql: str, delta: int | float) -> str:
        if self.pg:
            d = p.add(str(delta))
            return (
                f"to_jsonb(COALESCE(CAST({doc} #>> {path_sql} AS numeric), 0) "
                f"+ CAST(CAST({d} AS text) AS numeric))"
            )
        return f"(COALESCE(json_extract({doc}, {path_sql}), 0) + {p.add(delta)})"

    def list_with(self, p: _Params, doc: str, path_sql: str, value: Scalar) -> str:
        v = self.json_value(p, value)
        cur = self.get(doc, path_sql)
        if self.pg:
            return (
                f"CASE WHEN jsonb_typeof({cur}) = 'array' THEN "
                f"CASE WHEN {cur} @> jsonb_build_array({v}) THEN {cur} "
                f"ELSE {cur} || jsonb_build_array({v}) END "
                f"ELSE jsonb_build_array({v}) END"
            )
        return (
            f"CASE WHEN json_type({doc}, {path_sql}) = 'array' THEN "
            f"CASE WHEN EXISTS (SELECT 1 FROM json_each({doc}, {path_sql}) AS e "
            f"WHERE {_SQLITE_ELEM} = {v}) THEN {cur} "
            f"ELSE json_insert({cur}, '$[#]', {v}) END "
            f"ELSE json_array({v}) END"
        )

    def list_without(self, p: _Params, doc: str, path_sql: str, value: Scalar) -> str:
        v = self.json_value(p, value)
        if self.pg:
            return (
                f"(SELECT COALESCE(jsonb_agg(t.e ORDER BY t.o), '[]'::jsonb) "
                f"FROM jsonb_array_elements({doc} #> {path_sql}) WITH ORDINALITY AS t(e, o) "
                f"WHERE t.e <> {v})"
            )
        return (
            f"(SELECT json_group_array(json({_SQLITE_ELEM})) "
            f"FROM json_each({doc}, {path_sql}) AS e WHERE {_SQLITE_ELEM} <> {v})"
        )


#: The JSON text of a ``json_each`` element (booleans come out of json_each as 1/0).
_SQLITE_ELEM = (
    "(CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE json_quote(e.value) END)"
)


def _dialect(executor: Executor) -> str:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name


async def _update(
    executor: Executor,
    user_id: int,
    doc: Document,
    new_doc_sql: str,
    p: _Params,
    *,
    guard: str | None = None,
    guard_message: str = "",
    keys: Iterable[tuple[str, ...]] = (),
    who: Origin = SYSTEM,
) -> dict[str, Any] | None:
    """Run the UPDATE (recording ``marker.changed`` for ``keys`` whose value changes, markers
    only: see :mod:`relove.users.changes`); return the new document, or ``None`` if ``guard``
    refused the row."""
    uid, now = p.add(check_user_id(user_id)), p.add(utcnow())
    where = f"id = {uid}" + (f" AND ({guard})" if guard else "")
    statements = update_statements(
        pg=_dialect(executor) == "postgresql", doc=doc, new_doc=new_doc_sql, where=where,
        uid=uid, now=now, add=p.add, keys=list(keys) if doc == "markers" else [], who=who,
    )
    now_param = bindparam(now[1:], type_=UTCDateTime())
    # Two tries: on PostgreSQL (READ COMMITTED) a user created by another transaction that
    # commits between our UPDATE's snapshot and the existence check below is invisible to the
    # UPDATE yet found by the check; the second UPDATE takes a new snapshot and sees the row.
    for attempt in range(2):
        try:
            for sql in statements[:-1]:
                await executor.execute(text(sql).bindparams(now_param), p.values)
            stmt = text(statements[-1]).bindparams(now_param).columns(column(doc, JSONDocument))
            result = await executor.execute(stmt, p.values)
        except IntegrityError as e:
            if f"ck_users_{doc}_size" in str(e.orig):
                raise DocumentTooLarge(
                    f"{doc} of user {user_id} would exceed its size limit; nothing was changed"
                ) from e
            raise
        row = result.first()
        if row is not None:
            return dict(row[0])
        exists = await executor.execute(
            text("SELECT 1 FROM users WHERE id = :id"), {"id": user_id}
        )
        if exists.first() is None:
            raise NotFound(f"user {user_id} not found")
        if attempt == 0 and _dialect(executor) == "postgresql":
            continue
        break
    if guard_message:
        raise InvalidInput(guard_message)
    return None


# -- public operations ------------------------------------------------------------------------


async def set_values(
    executor: Executor,
    user_id: int,
    values: Mapping[str, Any],
    *,
    doc: Document = "markers",
    once: bool = False,
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> dict[str, Any]:
    """Merge ``{path: value}`` into a document; ``once=True`` sets only paths not present yet
    (first-touch attribution). Returns the new document. On markers, each path whose value
    changes is recorded as ``marker.changed`` by ``source``/``actor`` in the same statement."""
    doc = check_document(doc)
    who = origin(source, actor)
    if not values:
        raise InvalidInput("nothing to set")
    sql, p = _SQL(_dialect(executor)), _Params()
    leaves = {parse_path(k): sql.json_value(p, v) for k, v in values.items()}
    new = sql.set_paths(p, doc, leaves, once=once)
    result = await _update(executor, user_id, doc, new, p, keys=leaves, who=who)
    assert result is not None
    return result


async def set_once(
    executor: Executor,
    user_id: int,
    values: Mapping[str, Any],
    *,
    doc: Document = "markers",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> dict[str, Any]:
    return await set_values(
        executor, user_id, values, doc=doc, once=True, source=source, actor=actor
    )


async def unset(
    executor: Executor,
    user_id: int,
    paths: Iterable[str],
    *,
    doc: Document = "markers",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> dict[str, Any]:
    """Remove paths (missing ones are ignored). Returns the new document."""
    doc = check_document(doc)
    who = origin(source, actor)
    parsed = [parse_path(path) for path in paths]
    if not parsed:
        raise InvalidInput("nothing to unset")
    sql, p = _SQL(_dialect(executor)), _Params()
    result = await _update(
        executor, user_id, doc, sql.unset_paths(p, doc, parsed), p, keys=parsed, who=who
    )
    assert result is not None
    return result


async def increment(
    executor: Executor,
    user_id: int,
    path: str,
    delta: int | float = 1,
    *,
    doc: Document = "markers",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> int | float:
    """Add ``delta`` to a number (a missing key counts as 0). Returns the new number."""
    doc = check_document(doc)
    who = origin(source, actor)
    if isinstance(delta, bool) or not isinstance(delta, int | float) or (
        isinstance(delta, float) and not math.isfinite(delta)
    ):
        raise InvalidInput(f"increment needs a finite number, got {delta!r}")
    check_value(delta)  # an int past 64 bits (isfinite would raise OverflowError past 1e308)
    parsed = parse_path(path)
    sql, p = _SQL(_dialect(executor)), _Params()
    ps = sql.path(p, parsed)
    new = sql.set_paths(p, doc, {parsed: sql.increment_value(p, doc, ps, delta)})
    guard = f"{sql.json_type(doc, ps)} IS NULL OR {sql.json_type(doc, ps)} IN {sql.number_types()}"
    result = await _update(
        executor, user_id, doc, new, p, guard=guard,
        guard_message=f"{doc}.{path} is not a number; nothing was changed",
        keys=[parsed], who=who,
    )
    value = get_path(result, parsed)
    return _normalise_number(value)


async def add_to_list(
    executor: Executor,
    user_id: int,
    path: str,
    *values: Scalar,
    doc: Document = "markers",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> list[Any]:
    """Add values to a list (each once; a missing key becomes a list). Returns the new list."""
    who = origin(source, actor)
    return await _list_op(executor, user_id, path, values, doc=doc, add=True, who=who)


async def remove_from_list(
    executor: Executor,
    user_id: int,
    path: str,
    *values: Scalar,
    doc: Document = "markers",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> list[Any]:
    """Remove every occurrence of values from a list. Returns the new list."""
    who = origin(source, actor)
    return await _list_op(executor, user_id, path, values, doc=doc, add=False, who=who)


async def _list_op(
    executor: Executor,
    user_id: int,
    path: str,
    values: tuple[Scalar, ...],
    *,
    doc: Document,
    add: bool,
    who: Origin,
) -> list[Any]:
    doc = check_document(doc)
    parsed = parse_path(path)
    if not values:
        raise InvalidInput("no values given")
    for value in values:
        if not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"list elements must be text, numbers or booleans, got {value!r}")
        check_value(value)  # all values before the first statement: a refusal changes nothing
    result: dict[str, Any] | None = None
    # One statement per value, all in the caller's transaction.
    for value in values:
        sql, p = _SQL(_dialect(executor)), _Params()
        ps = sql.path(p, parsed)
        kind = sql.json_type(doc, ps)
        if add:
            new_list = sql.list_with(p, doc, ps, value)
            guard = f"{kind} IS NULL OR {kind} IN ('array', 'null')"
            message = f"{doc}.{path} is not a list; nothing was changed"
        else:
            new_list = sql.list_without(p, doc, ps, value)
            guard, message = f"{kind} = 'array'", ""
        new = sql.set_paths(p, doc, {parsed: new_list})
        result = await _update(
            executor, user_id, doc, new, p, guard=guard, guard_message=message,
            keys=[parsed], who=who,
        )
    current = get_path(result, parsed) if result is not None else None
    return list(current) if isinstance(current, list) else []


async def append_bounded(
    executor: Executor,
    user_id: int,
    path: str,
    item: Any,
    *,
    keep: int,
    doc: Document = "context",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> list[Any]:
    """Append ``item`` to a list and keep only its last ``keep`` elements, in ONE UPDATE (a
    missing or non-list value becomes a list). For bounded logs such as recent conversation
    turns. Returns the new list."""
    doc = check_document(doc)
    parsed = parse_path(path)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInput(f"keep must be a positive integer, got {keep!r}")
    sql, p = _SQL(_dialect(executor)), _Params()
    ps = sql.path(p, parsed)
    v = sql.json_value(p, item)
    k = p.add(keep)
    if sql.pg:
        cur = sql.get(doc, ps)
        arr = (
            f"((CASE WHEN jsonb_typeof({cur}) = 'array' THEN {cur} ELSE '[]'::jsonb END) "
            f"|| jsonb_build_array({v}))"
        )
        new_list = (
            f"(SELECT COALESCE(jsonb_agg(t.e ORDER BY t.o), '[]'::jsonb) "
            f"FROM jsonb_array_elements({arr}) WITH ORDINALITY AS t(e, o) "
            f"WHERE t.o > jsonb_array_length({arr}) - CAST({k} AS integer))"
        )
    else:
        arr = (
            f"(CASE WHEN json_type({doc}, {ps}) = 'array' "
            f"THEN json_insert(json({doc} -> {ps}), '$[#]', {v}) ELSE json_array({v}) END)"
        )
        elem = (
            "(CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "WHEN 'null' THEN 'null' WHEN 'object' THEN e.value WHEN 'array' THEN e.value "
            "ELSE json_quote(e.value) END)"
        )
        new_list = (
            f"(SELECT json_group_array(json({elem})) FROM (SELECT j.key, j.type, j.value "
            f"FROM json_each({arr}) AS j WHERE j.key >= json_array_length({arr}) - {k} "
            f"ORDER BY j.key) AS e)"
        )
    new = sql.set_paths(p, doc, {parsed: new_list})
    who = origin(source, actor)
    result = await _update(executor, user_id, doc, new, p, keys=[parsed], who=who)
    current = get_path(result, parsed) if result is not None else None
    return list(current) if isinstance(current, list) else []


async def set_values_if(
    executor: Executor,
    user_id: int,
    values: Mapping[str, Any],
    *,
    expect: Mapping[str, Any],
    doc: Document = "markers",
    source: EventSource | str = EventSource.system,
    actor: str | None = None,
) -> dict[str, Any] | None:
    """Compare-and-set: merge ``values`` only if every ``expect`` path holds its expected value
    (``None`` = missing or null). Returns the new document, or ``None`` when the expectation
    failed (nothing changed) — so two writers never both apply a stale update."""
    doc = check_document(doc)
    if not values:
        raise InvalidInput("nothing to set")
    sql, p = _SQL(_dialect(executor)), _Params()
    leaves = {parse_path(k): sql.json_value(p, v) for k, v in values.items()}
    new = sql.set_paths(p, doc, leaves)
    guards = []
    for path, expected in expect.items():
        ps = sql.path(p, parse_path(path))
        if expected is None:
            guards.append(f"COALESCE({sql.json_type(doc, ps)}, 'null') = 'null'")
        elif sql.pg:
            guards.append(f"({doc} #> {ps}) = {sql.json_value(p, expected)}")
        else:
            guards.append(f"json({doc} -> {ps}) = {sql.json_value(p, expected)}")
    guard = " AND ".join(guards) if guards else None
    who = origin(source, actor)
    return await _update(executor, user_id, doc, new, p, guard=guard, keys=leaves, who=who)


async def get_user_documents(executor: Executor, user_id: int) -> dict[str, dict[str, Any]]:
    check_user_id(user_id)
    row = (
        await executor.execute(
            text("SELECT markers, context FROM users WHERE id = :id").columns(
                column("markers", JSONDocument), column("context", JSONDocument)
            ),
            {"id": user_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return {"markers": dict(row[0]), "context": dict(row[1])}


def _normalise_number(value: Any) -> int | float:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
