"""Outbound webhooks: endpoints, the outbox fed from ``events`` by a durable cursor, signed
deliveries with retries (docs/webhooks.md).

Modules: ``models`` (tables) · ``service`` (endpoints, replay, test, deliveries) · ``signing``
(Standard Webhooks) · ``netguard`` (the SSRF guard) · ``dispatcher`` (events → deliveries) ·
``sender`` (claim, POST, retry) · ``worker`` (the loop inside ``relove worker``).
"""
