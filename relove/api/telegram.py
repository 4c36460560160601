"""How the API talks to Telegram as the bot (a broadcast's test-send): see
:mod:`relove.telegram.paced`."""

from __future__ import annotations

from relove.telegram.paced import PacedBot


class ApiBot(PacedBot):
    who = "the API"
