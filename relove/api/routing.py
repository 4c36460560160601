"""The unit of work of an API request: :class:`ApiRoute` opens the request's session before the
route's dependencies run and ends it after the route returns — commit on success (together with
the stored response of an ``Idempotency-Key``), rollback on any error. Routes never commit."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from relove.api import idempotency
from relove.api.deps import api_context
from relove.api.problems import problem_for
from relove.errors import ReloveError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        route_handler = super().get_route_handler()

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
