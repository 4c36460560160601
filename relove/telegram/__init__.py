"""Everything about talking to Telegram, in one room.

- :mod:`relove.telegram.limits` — size limits and UTF-16 length;
- :mod:`relove.telegram.html` — Telegram's HTML rules (shared by the product and the sandbox).

Importing this package imports nothing else: a worker that needs only the lean client must not
pay for aiogram.
"""
