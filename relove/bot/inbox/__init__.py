"""Webhook mode: the durable inbox of updates and the processes around it.

* :mod:`relove.bot.inbox.models` — the ``bot_inbox`` and ``bot_inbox_lanes`` tables.
* :mod:`relove.bot.inbox.store` — record (deduplicated by ``update_id``), claim a user's lane,
  finish, renew and release leases, prune (SQL only, both databases).
* :mod:`relove.bot.inbox.processor` — claimed updates through the same pipeline as polling.
* :mod:`relove.bot.inbox.server` — the HTTP endpoint Telegram posts to, and graceful shutdown.
"""
