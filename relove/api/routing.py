"""The unit of work of an API request: :class:`ApiRoute` opens the request's session before the
route's dependencies run and ends it after the route returns — commit on success (together with
the stored response of an ``Idempotency-Key``), rollback on any error. Routes never commit.

A route marked :func:`single_read` runs ONE SELECT and writes nothing: it gets a session of
``ApiContext.single_reads`` when there is one (PostgreSQL: autocommit — no ``BEGIN``/``COMMIT``)
and its connections skip the pool's pre-ping (relove.db.engine.ping_on_checkout): one round
trip per request instead of four. Without the pre-ping a connection the database dropped
(restart, failover) is found by the request itself; the route then runs once more on a fresh
connection, which a read may safely do — so no request fails after a failover, as with the
pre-ping."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from relove.api import idempotency
from relove.api.deps import api_context
from relove.api.problems import problem_for
from relove.db.engine import ping_skipped
from relove.errors import ReloveError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[..., Coroutine[Any, Any, Any]]

_SINGLE_READ = "_relove_single_read"


def single_read(endpoint: Endpoint) -> Endpoint:
    """Mark a route that runs one SELECT and writes nothing (see the module's docstring)."""
    setattr(endpoint, _SINGLE_READ, True)
    return endpoint


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        route_handler = super().get_route_handler()
        if getattr(self.endpoint, _SINGLE_READ, False):
            return _single_read_handler(route_handler)

        async def handler(request: Request) -> Response:
            ctx = api_context(request)
            async with ctx.sessions() as session:
                request.state.session = session
                try:
                    response = await route_handler(request)
                except idempotency.Replay as replay:
                    return replay.response
                except ReloveError as e:
                    # The route ran and refused: nothing changed. With a claimed key, that
                    # answer is the key's response too (a retry gets the same refusal).
                    await session.rollback()
                    claim = getattr(request.state, "idempotency", None)
                    response = problem_for(e)
                    if claim is not None:
                        await idempotency.finish(session, claim, response)
                        await session.commit()
                    return response
                except (RequestValidationError, Exception):
                    await session.rollback()
                    claim = getattr(request.state, "idempotency", None)
                    if claim is not None:
                        await idempotency.release(ctx.sessions, claim)
                    raise
                claim = getattr(request.state, "idempotency", None)
                if claim is not None:
                    if response.status_code >= 500:
                        await session.rollback()
                        await idempotency.release(ctx.sessions, claim)
                        return response
                    await idempotency.finish(session, claim, response)
                await session.commit()
                return response

        return handler


def _single_read_handler(route_handler: Handler) -> Handler:
    async def handler(request: Request) -> Response:
        ctx = api_context(request)
        sessions = ctx.single_reads or ctx.sessions
        for attempt in (1, 2):
            with ping_skipped():
                response = await _read_once(route_handler, request, sessions, attempt)
            if response is not None:
                return response
        raise AssertionError("unreachable")

    return handler


async def _read_once(
    route_handler: Handler, request: Request, sessions: Any, attempt: int
) -> Response | None:
    """One run of a single-read route; None: its connection was dropped, run it again."""
    async with sessions() as session:
        request.state.session = session
        try:
            response = await route_handler(request)
        except ReloveError as e:
            return problem_for(e)
        except DBAPIError as e:
            # a pooled connection the database dropped: SQLAlchemy has invalidated the pool,
            # the next attempt gets a fresh connection
            if attempt == 1 and e.connection_invalidated:
                return None
            raise
        await session.commit()  # nothing to commit in autocommit; ends a transaction
        return response
