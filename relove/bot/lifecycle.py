"""The dispatcher's life around a bot's main loop (polling or the webhook server): stop signals,
aiogram's startup and shutdown hooks with the workflow data, in one place."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiogram import Bot, Dispatcher

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.asynccontextmanager
async def dispatcher_running(
    dp: Dispatcher, bot: Bot, on_signal: Callable[[signal.Signals], None] | None
) -> AsyncIterator[None]:
    """Installs ``on_signal`` for SIGTERM/SIGINT (unless None), emits startup, runs the body;
    then removes the handlers and emits shutdown."""
    loop = asyncio.get_running_loop()
    signals = STOP_SIGNALS if on_signal is not None else ()
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)  # type: ignore[arg-type]
    workflow: dict[str, Any] = {"dispatcher": dp, "bots": (bot,), **dp.workflow_data}
    await dp.emit_startup(bot=bot, **workflow)
    try:
        yield
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await dp.emit_shutdown(bot=bot, **workflow)
