"""Operators of the product: admins with roles, and the one-time login links of the console.

``RELOVE_ADMIN_IDS`` are always owners; the ``admins`` table adds operators and viewers (and
more owners). The bot, the CLI and the console ask :func:`relove.admins.service.role_of`.
"""
