"""Broadcasts: campaigns to a segment, sent at Telegram's rate limits, resumable after a crash.

Layers: ``models`` (tables) · ``content`` (message + Jinja2 templates) · ``base`` (the sender's
interfaces: a ``send`` callable and a ``DeliveryStore``) · ``ratelimit`` (the bot-wide limiter
that keeps replies first) · ``sender`` (the sending loop) · ``store`` (SQLAlchemy store) ·
``telegram`` (the aiogram send) · ``service`` (create, preview, start, control, stats) ·
``runner`` (workers that claim broadcasts by lease).
"""
