"""Middleware of the conversation features, wired once on the dispatcher (``create_dispatcher``):
provides ``conversation`` (the :class:`~relove.conversation.components.ConversationComponents`)
to every message and callback handler, and schedules gender inference for users whose gender
is unknown (off the hot path, once per name).

The components come from the dispatcher's workflow data when the caller passed them
(``create_dispatcher(..., conversation=...)``); otherwise they are built from settings on the
first update and kept in the dispatcher, closed on its shutdown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject

from relove.conversation.components import ConversationComponents, build_components


def components_for(data: dict[str, Any]) -> ConversationComponents:
    comp = data.get("conversation")
    if comp is not None:
        return comp
    dispatcher = data.get("dispatcher")
    if dispatcher is not None:
        comp = dispatcher.workflow_data.get("conversation")
    if comp is None:
        comp = build_components(data["settings"], data["session_factory"])
        if dispatcher is not None:
            dispatcher.workflow_data["conversation"] = comp
            dispatcher.shutdown.register(comp.close)
    data["conversation"] = comp
    return comp


class ConversationMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        comp = components_for(data)
        user = data.get("user")
        if user is not None and not data.get("_gender_checked"):
            data["_gender_checked"] = True
            comp.maybe_infer_gender(user)
        return await handler(event, data)
