"""Telegram's size limits and its unit of length.

Telegram counts text in UTF-16 code units: an emoji outside the Basic Multilingual Plane (😀)
counts 2. Limits apply to the visible text (after HTML is parsed into entities).
"""

from __future__ import annotations

import re

#: Longest message text, in UTF-16 code units of visible text.
TEXT_LIMIT = 4096
#: Longest media caption, in UTF-16 code units of visible text.
CAPTION_LIMIT = 1024
#: Longest inline button label we accept (Telegram shows about this much).
BUTTON_TEXT_LIMIT = 64
#: Longest ``callback_data`` of an inline button, in bytes.
CALLBACK_DATA_LIMIT = 64
#: Longest ``/start`` deep-link payload.
START_PAYLOAD_LIMIT = 64
#: What Telegram allows in a ``t.me/<bot>?start=<payload>`` deep link.
_START_PAYLOAD = re.compile(rf"[A-Za-z0-9_-]{{1,{START_PAYLOAD_LIMIT}}}")


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, Telegram's unit for offsets and limits."""
    n = len(text)
    if text.isascii():
        return n
    return n + sum(1 for ch in text if ord(ch) > 0xFFFF)


def is_start_payload(text: str) -> bool:
    """Whether ``text`` can be a deep-link ``/start`` payload (1–64 of ``A-Z a-z 0-9 _ -``)."""
    return _START_PAYLOAD.fullmatch(text) is not None
