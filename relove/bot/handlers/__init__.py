"""Every router of the bot, in order: admin commands first, the catch-all fallback last.

Each handler module exposes ``create_router()``, so every Dispatcher gets fresh routers (an
aiogram Router can be attached to one parent only).
"""

from __future__ import annotations

from aiogram import Router

from relove.bot.handlers import (
    admin,
    ai_sessions,
    analytics,
    automations,
    broadcasts,
    conversation,
    fallback,
    forget,
    handoff,
    login,
    membership,
    profile,
    recommend,
    scenarios,
    start,
)


def build_routers() -> list[Router]:
    return [
        admin.create_router(),
        analytics.create_router(),
        login.create_router(),
        broadcasts.create_router(),
        automations.create_router(),
        membership.create_router(),
        # Before the flows: a mode's deep link, /stop and /cancel of a mode.
        ai_sessions.create_router(),
        # Before /start: a flow may take /start (it passes it on when none applies).
        scenarios.create_router(),
        start.create_router(),
        profile.create_router(),
        forget.create_router(),
        recommend.create_router(),
        # An operator's live chat holds the companion and the fallback back for that user.
        handoff.create_router(),
        # Messages inside an AI session go to its mode, not the companion.
        ai_sessions.create_text_router(),
        # Free text → the LLM companion when configured (else it falls through to fallback).
        conversation.create_router(),
        # The catch-all must stay last: it answers any message no router above took.
        fallback.create_router(),
    ]
