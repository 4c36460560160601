"""A local Telegram Bot API emulator with a web chat, so the real bot runs with no token and no
internet: ``relove sandbox`` serves it, ``relove demo`` runs the bot against it."""
