"""Every router of the bot, in order: admin commands first, the catch-all fallback last.

Each handler module exposes ``create_router()``, so every Dispatcher gets fresh routers (an
aiogram Router can be attached to one parent only).
"""

from __future__ import annotations

from aiogram import Router

from relove.bot.handlers import admin, fallback, forget, profile, start


def build_routers() -> list[Router]:
    return [
        admin.create_router(),
        start.create_router(),
        profile.create_router(),
        forget.create_router(),
        # The catch-all must stay last: it answers any message no router above took.
        fallback.create_router(),
    ]
