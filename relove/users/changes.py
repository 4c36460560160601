"""The history of a change, written by the change itself.

A marker operation records one ``marker.changed`` event (``key``, ``old``, ``new``) per path it
touched whose value really changed, with the old and new values computed by the database:

* PostgreSQL: ONE statement — ``old`` locks the row (``FOR UPDATE``: the version actually
  updated, also under concurrent writers), ``upd`` updates it, ``ev`` inserts the events for the
  paths whose value differs, and the statement returns the new document;
* SQLite (no data-modifying CTEs): ``INSERT … SELECT`` of the events, computed from the stored
  row and the same new-document expression, then the ``UPDATE`` — in the caller's transaction,
  whose write lock (taken by the first statement) keeps any other writer out in between. The
  insert also checks the size limit the update will check, so a refused update leaves no event.

The same holds for ``gender`` (``user.gender_changed``) and ``is_active`` (``user.blocked`` /
``user.unblocked``), see :func:`set_gender` / :func:`set_active` in :mod:`relove.users.service`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relove.db.models import CONTEXT_MAX_BYTES, MARKERS_MAX_BYTES
from relove.events.catalog import MARKER_CHANGED, EventSource, check_source
from relove.events.models import PROPS_MAX_BYTES
from relove.events.record import _check_actor

#: Old and new values above this size (JSON text bytes) are left out of ``marker.changed``
#: (``truncated: true``), so the event stays under the props limit.
VALUE_MAX_BYTES = 3 * 1024


@dataclass(frozen=True, slots=True)
class Origin:
    """Who makes a change: ``source`` (bot, cli, api …) and ``actor`` (admin id, token …)."""

    source: str
    actor: str | None = None


def origin(source: EventSource | str, actor: str | None) -> Origin:
    _check_actor(actor)
    return Origin(check_source(source).value, actor)


def _doc_limit(doc: str) -> int:
    return MARKERS_MAX_BYTES if doc == "markers" else CONTEXT_MAX_BYTES


def update_statements(
    *,
    pg: bool,
    doc: str,
    new_doc: str,
    where: str,
    uid: str,
    now: str,
    add: Callable[[object], str],
    keys: list[tuple[str, ...]],
    who: Origin,
) -> list[str]:
    """The SQL of an update of ``doc`` that records ``marker.changed`` for ``keys``; the last
    statement returns the new document (one row, or none when ``where`` refused the row).
    ``add`` binds a value and returns its placeholder."""
    if not keys:
        return [
            f"UPDATE users SET {doc} = {new_doc}, updated_at = {now} WHERE {where} "
            f"RETURNING {doc}"
        ]
    src, act, name = add(who.source), add(who.actor), add(MARKER_CHANGED)
    if pg:
        src, act, name = f"CAST({src} AS text)", f"CAST({act} AS text)", f"CAST({name} AS text)"
        uid_b, now_t = f"CAST({uid} AS bigint)", f"CAST({now} AS timestamptz)"
        rows = ", ".join(f"({add('.'.join(k))}, CAST({add(list(k))} AS text[]))" for k in keys)
        old_v, new_v = "(u.old_doc #> k.path)", "(u.new_doc #> k.path)"
        props = _pg_props(old_v, new_v)
        return [
            f"WITH old AS (SELECT id AS old_id, {doc} AS old_doc FROM users "
            f"WHERE id = {uid} FOR UPDATE), "
            f"u AS (UPDATE users SET {doc} = {new_doc}, updated_at = {now} FROM old "
            f"WHERE id = old.old_id AND {where} RETURNING {doc} AS new_doc, old.old_doc), "
            f"ev AS (INSERT INTO events (user_id, name, props, source, actor, at) "
            f"SELECT {uid_b}, {name}, {props}, {src}, {act}, {now_t} "
            f"FROM u CROSS JOIN (VALUES {rows}) AS k(key, path) "
            f"WHERE {old_v} IS DISTINCT FROM {new_v}) "
            f"SELECT new_doc AS {doc} FROM u"
        ]
    rows = " UNION ALL ".join(
        f"SELECT {add('.'.join(k))} AS key, {add(_sqlite_path(k))} AS path" for k in keys
    )
    old_v, new_v = "(d.old_doc -> k.path)", "(d.new_doc -> k.path)"
    props = _sqlite_props(old_v, new_v)
    limit = _doc_limit(doc)
    insert = (
        f"INSERT INTO events (user_id, name, props, source, actor, at) "
        f"SELECT {uid}, {name}, {props}, {src}, {act}, {now} "
        f"FROM (SELECT {doc} AS old_doc, {new_doc} AS new_doc FROM users WHERE {where}) AS d, "
        f"({rows}) AS k "
        f"WHERE length(CAST(d.new_doc AS BLOB)) <= {limit} AND {old_v} IS NOT {new_v}"
    )
    update = (
        f"UPDATE users SET {doc} = {new_doc}, updated_at = {now} WHERE {where} RETURNING {doc}"
    )
    return [insert, update]


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{part}"' for part in path)


def _pg_props(old_v: str, new_v: str) -> str:
    full = f"jsonb_build_object('key', k.key, 'old', {old_v}, 'new', {new_v})"

    def small(v: str) -> str:
        return f"CASE WHEN octet_length(CAST({v} AS text)) <= {VALUE_MAX_BYTES} THEN {v} END"

    short = (
        f"jsonb_build_object('key', k.key, 'old', {small(old_v)}, 'new', {small(new_v)}, "
        "'truncated', true)"
    )
    return (
        f"CASE WHEN octet_length(CAST({full} AS text)) <= {PROPS_MAX_BYTES} "
        f"THEN {full} ELSE {short} END"
    )


def _sqlite_props(old_v: str, new_v: str) -> str:
    full = f"json_object('key', k.key, 'old', json({old_v}), 'new', json({new_v}))"

    def small(v: str) -> str:
        return f"CASE WHEN length(CAST({v} AS BLOB)) <= {VALUE_MAX_BYTES} THEN json({v}) END"

    short = (
        f"json_object('key', k.key, 'old', {small(old_v)}, 'new', {small(new_v)}, "
        "'truncated', json('true'))"
    )
    return (
        f"CASE WHEN length(CAST({full} AS BLOB)) <= {PROPS_MAX_BYTES} THEN {full} ELSE {short} END"
    )
