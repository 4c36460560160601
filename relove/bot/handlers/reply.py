"""Sending model- or operator-written text safely: Markdown → Telegram HTML, split to fit."""

from __future__ import annotations

import html
import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message

from relove.conversation.formatting import split_html

log = logging.getLogger(__name__)


async def send_markdown(
    message: Message, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
) -> None:
    """Send ``text`` as one or more HTML messages; the keyboard goes on the last part."""
    parts = split_html(text) or [html.escape("…")]
    for i, part in enumerate(parts):
        markup = reply_markup if i == len(parts) - 1 else None
        try:
            await message.answer(part, reply_markup=markup)
        except TelegramBadRequest as e:
            if "parse entities" not in str(e):
                raise
            # Should never happen (the HTML is built balanced); degrade to plain text.
            log.error("Telegram refused generated HTML: %s", e)
            await message.answer(part, parse_mode=None, reply_markup=markup)
