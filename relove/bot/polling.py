"""Long polling for `relove run` and `relove demo`."""

from __future__ import annotations

from aiogram import Bot, Dispatcher

from relove.runtime import tune_gc

#: Every update type that carries a user, so the touch middleware sees them all (Telegram only
#: sends what ``allowed_updates`` asks for; aiogram would otherwise ask only for the types that
#: have a handler, and e.g. a block — ``my_chat_member`` — would never reach the touch).
TOUCH_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "callback_query",
        "inline_query",
        "chosen_inline_result",
        "my_chat_member",
        "chat_join_request",
        "pre_checkout_query",
        "shipping_query",
        "poll_answer",
        "message_reaction",
    }
)


def allowed_updates(dp: Dispatcher) -> list[str]:
    return sorted(set(dp.resolve_used_update_types()) | TOUCH_UPDATE_TYPES)


async def poll(bot: Bot, dp: Dispatcher) -> None:
    """Serve updates until a signal stops it."""
    tune_gc()
    await dp.start_polling(bot, handle_signals=True, allowed_updates=allowed_updates(dp))
