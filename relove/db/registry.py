"""Imports every module that defines tables, so ``Base.metadata`` knows them all."""

from __future__ import annotations

import importlib

MODEL_MODULES = [
    "relove.db.models",
    "relove.segments.models",
    "relove.broadcasts.models",
    "relove.events.models",
    "relove.api.models",
    "relove.bulk.models",
    "relove.admins.models",
    "relove.broadcasts.links",
    "relove.conversation.ai_sessions.models",
    "relove.automations.models",
    "relove.webhooks.models",
    "relove.bot.inbox.models",
]


def import_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
