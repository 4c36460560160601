"""How the console talks to Telegram as the bot (live-chat messages, test sends): one
:class:`ConsoleBot` per console process, see :mod:`relove.telegram.paced`."""

from __future__ import annotations

from relove.telegram.paced import PacedBot


class ConsoleBot(PacedBot):
    who = "the console"
