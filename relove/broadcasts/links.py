"""Tracked button links: a broadcast's URL buttons go through ``/l/…`` on the console's server,
which records ``link.clicked`` and redirects to the real URL.

Each recipient gets their own URL, ``{base}/l/{link_id}.{user_id}.{sig}``, where ``sig`` is an
HMAC of ``link_id.user_id`` with the broadcast's own random key (kept in its options), so a
click is attributed to a user and a forged URL records nothing (it still redirects: the
destination is public anyway, and a reader's click must never break).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from relove.broadcasts.content import Button
from relove.db.models import Base

SIG_HEX = 16


class TrackedLink(Base):
    __tablename__ = "tracked_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    label: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (Index("ix_tracked_links_broadcast_id", "broadcast_id"),)


def new_key() -> str:
    return secrets.token_hex(16)


def signature(key: str, link_id: int, user_id: int) -> str:
    mac = hmac.new(bytes.fromhex(key), f"{link_id}.{user_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIG_HEX]


def tracked_url(base: str, key: str, link_id: int, user_id: int) -> str:
    return f"{base.rstrip('/')}/l/{link_id}.{user_id}.{signature(key, link_id, user_id)}"


def parse_click(path_part: str) -> tuple[int, int, str] | None:
    """``"12.345.abcd…"`` → (link id, user id, signature), or None when malformed."""
    parts = path_part.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        link_id, user_id = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if not (0 < link_id < 2**31 and 0 < user_id < 2**63) or len(parts[2]) != SIG_HEX:
        return None
    return link_id, user_id, parts[2]


def valid_signature(key: str, link_id: int, user_id: int, sig: str) -> bool:
    return hmac.compare_digest(signature(key, link_id, user_id), sig.lower())


def button_rewriter(
    options: dict[str, Any], buttons: tuple[tuple[Button, ...], ...]
) -> Callable[[int], tuple[tuple[Button, ...], ...]] | None:
    """For a broadcast whose options carry ``links`` ({"base", "key", "ids": [[id|null]]}):
    a function user id → that recipient's buttons with tracked URLs; None otherwise."""
    links = options.get("links") if isinstance(options, dict) else None
    if not isinstance(links, dict) or not links.get("ids"):
        return None
    base, key, ids = str(links["base"]), str(links["key"]), links["ids"]

    def rewrite(user_id: int) -> tuple[tuple[Button, ...], ...]:
        return tuple(
            tuple(
                Button(b.text, tracked_url(base, key, ids[r][c], user_id))
                if r < len(ids) and c < len(ids[r]) and ids[r][c] else b
                for c, b in enumerate(row)
            )
            for r, row in enumerate(buttons)
        )

    return rewrite
