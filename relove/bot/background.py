"""Loops the bot process runs beside its handlers (broadcast sending, automations): kept in the
dispatcher's workflow data under a key as ``(stop event, task, client)``, stopped at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import Dispatcher


def stopper(key: str) -> Callable[..., Awaitable[None]]:
    """A shutdown handler: signals the loop kept under ``key``, waits for it, closes its client."""

    async def stop_runner(**data: object) -> None:
        dispatcher = data.get("dispatcher")
        if not isinstance(dispatcher, Dispatcher):
            return
        worker = dispatcher.workflow_data.pop(key, None)
        if worker is not None:
            stop, task, client = worker
            stop.set()
            try:
                await task
            finally:
                await client.close()

    return stop_runner
