"""The lean path of the hottest routes, ``GET``/``PATCH /api/v1/users/{id}`` and ``POST
/api/v1/users:batch``: an ASGI middleware that answers their common requests without
FastAPI's routing, dependency solving and ORM session (together ~0.5 ms of a 0.9 ms GET; see
docs/benchmarks.md, API rounds 3 and 4).

It keeps the routes' behaviour exactly, by running the same code in the same order and by
handing every request it is not sure about to the FastAPI routes unchanged:

* the token, its rate limit and the scope: :func:`relove.api.deps.check_token` (401/429/403,
  problem+json as :func:`relove.api.problems.problem_for` renders them);
* ``GET``: ``fields=`` through :func:`~relove.segments.listing.parse_fields`, the user's row
  as :func:`~relove.segments.listing.fetch_user` reads it — on PostgreSQL with ONE statement
  on a pooled asyncpg connection in autocommit, without the pre-ping; a connection the
  database dropped is met by the statement and the read runs once more on a fresh one (as the
  FastAPI route marked ``single_read`` does);
* ``PATCH``: the body parsed and validated as FastAPI does (``json.loads``, then
  :class:`~relove.api.schemas.UserPatch`), the change checked, then — on PostgreSQL, for a
  change that only ``$set``s / ``$inc``s top-level markers — the marker service's one
  statement (:func:`~relove.users.patch.returning_plan`) in autocommit on a pooled connection
  after the pre-ping: it is its own transaction, the change and its events commit together;
  anything else :func:`~relove.users.patch.apply_change_returning` / ``apply_change`` in one
  session, committed or rolled back as :class:`~relove.api.routing.ApiRoute` does. Events
  carry ``source=api`` and the token as actor either way;
* ``POST /users:batch``: the body parsed by orjson (see :func:`_valid_batch`) and validated by
  :class:`~relove.api.schemas.UserBatch`, then the route's own
  :func:`~relove.api.routes.users.apply_user_batch` in one session.

Handed on to FastAPI untouched (before anything is checked or counted): another path or
method, an id that is not a plain decimal in range, a query other than one ``fields=`` (GET)
or any query (PATCH, batch), a root path, an ``Idempotency-Key``, a body without
``Content-Length``, not ``Content-Type: application/json`` or that does not validate (FastAPI
then answers it with its own 422). The OpenAPI document is FastAPI's, unchanged: these routes
stay declared there. ``RELOVE_API_LEAN_ROUTES=false`` turns the lean path off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relove.api.deps import ApiContext, check_token
from relove.api.problems import problem_for
from relove.api.routes.users import USER_COLUMNS, apply_user_batch, change_of
from relove.api.schemas import INT64_MAX, UserBatch, UserPatch
from relove.api.tokens import Principal
from relove.db.engine import ping_skipped
from relove.db.raw import RawStatements, is_integrity_error
from relove.errors import NotFound, ReloveError
from relove.events.catalog import EventSource
from relove.segments.listing import (
    USER_FIELDS,
    fetch_user,
    parse_fields,
    user_row,
    user_select,
)
from relove.users import patch
from relove.users.paths import check_user_id

#: a plain decimal id without sign, spaces or leading zeros (anything else: FastAPI parses it)
_USER_PATH = re.compile(r"/users/([1-9][0-9]{0,18})")
_FIELDS_MAX = 500  # the routes' ``fields`` query's max_length
_READ_SCOPES = ("users:read",)
_WRITE_SCOPES = ("users:write",)
T = TypeVar("T")


class LeanUserRoutes:
    """ASGI middleware in front of the API's routes (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, ctx: ApiContext, prefix: str) -> None:
        self.app = app
        self.ctx = ctx
        self.prefix = prefix
        self.batch_path = f"{prefix}/users:batch"
        #: PostgreSQL: the statements on pooled asyncpg connections, no session
        self.raw = RawStatements(ctx.engine) if ctx.engine.dialect.name == "postgresql" else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user_id = self._user_id(scope)
        if user_id is not None:
            method = scope["method"]
            if method == "GET":
                plain, fields = _fields_query(scope["query_string"])
                if plain:
                    response = await self._get(scope, user_id, fields)
                    await response(scope, receive, send)
                    return
            elif method == "PATCH" and not scope["query_string"]:
                await self._patch(scope, receive, send, user_id)
                return
        elif self._is_batch(scope):
            await self._batch(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_batch(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http" and not scope.get("root_path") and scope["method"] == "POST"
            and not scope["query_string"] and scope["path"] == self.batch_path
        )  # fmt: skip

    def _user_id(self, scope: Scope) -> int | None:
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            return None
        m = _USER_PATH.fullmatch(path, len(self.prefix))
        if m is None:
            return None
        user_id = int(m.group(1))
        return user_id if user_id <= INT64_MAX else None

    # -- GET /users/{id} -----------------------------------------------------------------------
    async def _get(self, scope: Scope, user_id: int, fields: str | None) -> Response:
        try:
            await check_token(self.ctx, _bearer(scope), _READ_SCOPES)
            selected = parse_fields(fields)
            if self.raw is not None:
                check_user_id(user_id)
                row = await self.raw.fetchrow(
                    user_select(selected), {"user_id": user_id}, read=True
                )
                if row is None:
                    raise NotFound(f"user {user_id} not found")
                return JSONResponse(user_row(row, selected))
            with ping_skipped():
                async with self.ctx.engine.connect() as conn:
                    return JSONResponse(await fetch_user(conn, user_id, selected))
        except ReloveError as e:
            return problem_for(e)

    # -- PATCH /users/{id} ---------------------------------------------------------------------
    async def _patch(self, scope: Scope, receive: Receive, send: Send, user_id: int) -> None:
        got = await self._body(scope, receive, send, _valid_patch)
        if got is not None:
            headers, body, replay = got
            response = await self._apply_patch(headers, user_id, body)
            await response(scope, replay, send)

    async def _body(
        self, scope: Scope, receive: Receive, send: Send, validate: Callable[[bytes], T | None]
    ) -> tuple[dict[bytes, bytes], T, Receive] | None:
        """The headers, the validated body and the ``receive`` to answer with; None when the
        request was handed to FastAPI (and answered there)."""
        headers = _headers(scope)
        if (
            b"idempotency-key" in headers
            or headers.get(b"content-type") != b"application/json"
            # a body without a length (chunked) may run past the limit while it is read,
            # which FastAPI answers in its own way
            or b"content-length" not in headers
        ):
            await self.app(scope, receive, send)
            return None
        body, more = await _read_body(receive)
        replay = _replaying(body, more, receive)
        valid = None if more else validate(body)
        if valid is None:
            await self.app(scope, replay, send)
            return None
        return headers, valid, replay

    # -- POST /users:batch ---------------------------------------------------------------------
    async def _batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        got = await self._body(scope, receive, send, _valid_batch)
        if got is not None:
            headers, body, replay = got
            response = await self._apply_batch(headers, body)
            await response(scope, replay, send)

    async def _apply_batch(self, headers: dict[bytes, bytes], body: UserBatch) -> Response:
        try:
            principal = await self._writer(headers)
        except ReloveError as e:
            return problem_for(e)
        return await self._in_session(lambda s: apply_user_batch(s, body, principal.actor))

    async def _writer(self, headers: dict[bytes, bytes]) -> Principal:
        return await check_token(
            self.ctx, _bearer_value(headers.get(b"authorization")), _WRITE_SCOPES
        )

    async def _in_session(self, work: Callable[[AsyncSession], Awaitable[Response]]) -> Response:
        """``work`` in one session: committed, or rolled back with its refusal as the answer
        (as :class:`~relove.api.routing.ApiRoute` does)."""
        async with self.ctx.sessions() as session:
            try:
                response = await work(session)
            except ReloveError as e:
                await session.rollback()
                return problem_for(e)
            except BaseException:
                await session.rollback()
                raise
            await session.commit()
            return response

    async def _apply_patch(
        self, headers: dict[bytes, bytes], user_id: int, body: UserPatch
    ) -> Response:
        try:
            principal = await self._writer(headers)
        except ReloveError as e:
            return problem_for(e)
        change = change_of(body)
        try:
            patch.check_change(change)
            plan = (
                None
                if self.raw is None
                else patch.returning_plan(
                    user_id, change, USER_COLUMNS, source=EventSource.api, actor=principal.actor
                )
            )
            if plan is not None:  # the common PATCH: one statement, its own transaction
                return JSONResponse(user_row(await self._returning(plan, user_id, change),
                                             USER_FIELDS))  # fmt: skip
        except ReloveError as e:
            return problem_for(e)

        async def apply(session: AsyncSession) -> Response:
            row = await patch.apply_change_returning(
                session, user_id, change, USER_COLUMNS,
                source=EventSource.api, actor=principal.actor,
            )  # fmt: skip
            if row is not None:
                return JSONResponse(user_row(row, USER_FIELDS))
            await patch.apply_change(
                session, user_id, change, source=EventSource.api, actor=principal.actor
            )
            return JSONResponse(await fetch_user(session, user_id))

        return await self._in_session(apply)

    async def _returning(
        self, plan: tuple[Any, dict[str, Any]], user_id: int, change: patch.UserChange
    ) -> Sequence[Any]:
        assert self.raw is not None
        try:
            row = await self.raw.fetchrow(*plan)
        except Exception as e:
            if is_integrity_error(e) and patch.is_too_large(e):
                raise patch.markers_too_large(user_id) from e
            raise
        return patch.returning_row(row, user_id, change)


# -- request parts ---------------------------------------------------------------------------
def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header (as Starlette's ``Headers.get``)."""
    out: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.lower(), value)
    return out


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return _bearer_value(value)
    return None


def _bearer_value(raw: bytes | None) -> str | None:
    """FastAPI's ``HTTPBearer(auto_error=False)``: the credentials, or None."""
    if not raw:
        return None
    scheme, _, credentials = raw.decode("latin-1").partition(" ")
    credentials = credentials.strip()
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def _fields_query(query: bytes) -> tuple[bool, str | None]:
    """(True, ``fields``) for a query that holds nothing else (None: no query); (False, None)
    for anything else."""
    if not query:
        return True, None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "fields" or len(pairs[0][1]) > _FIELDS_MAX:
        return False, None
    return True, pairs[0][1]


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (``more``: the client went away before sending it all)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying(body: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then whatever ``receive`` gives."""
    sent = more  # a disconnect: nothing to give again, pass it on

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _valid_batch(body: bytes) -> UserBatch | None:
    """As :func:`_valid_patch`, parsed by orjson (~3× json.loads on a 1,000-item body) where it
    reads what json.loads reads. It does not for an integer of 19 digits or more (orjson
    makes one past 64 bits a float, which the checks would then take), so such a body goes to
    FastAPI, as do those orjson refuses (UTF-16, NaN, a lone surrogate)."""
    if not body or _LONG_NUMBER.search(body):
        return None
    try:
        return UserBatch.model_validate(orjson.loads(body), from_attributes=True)
    except (ValueError, ValidationError):  # orjson.JSONDecodeError is a ValueError
        return None


#: 19 digits in a row: an integer that may not fit 64 bits (or any long digit run, in a text)
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _valid_patch(body: bytes) -> UserPatch | None:
    """The body as FastAPI reads and validates it, or None (FastAPI then answers it)."""
    if not body:
        return None
    try:
        return UserPatch.model_validate(json.loads(body), from_attributes=True)
    except (ValueError, ValidationError):  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        return None
