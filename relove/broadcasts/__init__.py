"""Broadcasts: campaigns to a segment, sent at Telegram's rate limits, resumable after a crash.

Layers: ``models`` (tables) · ``content`` (message + Jinja2 templates) · ``base`` (the sender's
interfaces: a ``send`` callable and a ``DeliveryStore``) · ``sender`` (the sending loop, paced by
a lane of :mod:`relove.telegram.ratelimit`, which keeps replies first) · ``store`` (SQLAlchemy
store) · ``telegram`` (the send over :mod:`relove.telegram`'s lean client) · ``service`` (create,
preview, start, control, stats) · ``runner`` (workers that claim broadcasts by lease) ·
``notify`` (the admin's progress message).
"""
