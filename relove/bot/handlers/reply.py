"""Sending model- or operator-written text safely: Markdown → Telegram HTML, split to fit.

The reply path never raises on a 400 from Telegram: a part refused as HTML is resent as plain
text, and any other refusal (too long, anything unexpected) is logged and replaced by a short
fallback text, so the handler finishes and the person always gets an answer.
"""

from __future__ import annotations

import html
import logging
import re

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message

from relove.conversation.formatting import split_html
from relove.telegram.limits import utf16_len

log = logging.getLogger(__name__)
_TAG = re.compile(r"<[^>]*>")


def visible_text(part: str) -> str:
    """The text a generated HTML part shows (tags dropped, entities decoded)."""
    return html.unescape(_TAG.sub("", part))


async def send_markdown(
    message: Message,
    text: str,
    *,
    fallback: str,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> bool:
    """Send ``text`` as one or more HTML messages; the keyboard goes on the last part.

    ``fallback`` (HTML, e.g. from the texts file) is sent with the keyboard instead of the
    rest when Telegram refuses a part for any reason other than its markup. Returns True when
    the whole text was delivered (possibly as plain text)."""
    parts = split_html(text) or [html.escape("…")]
    for i, part in enumerate(parts):
        markup = reply_markup if i == len(parts) - 1 else None
        try:
            await message.answer(part, reply_markup=markup)
            continue
        except TelegramBadRequest as e:
            error = e
        if "parse entities" in str(error):
            # Should never happen (the HTML is built balanced); degrade to plain text.
            log.error("Telegram refused generated HTML: %s", error)
            try:
                await message.answer(visible_text(part), parse_mode=None, reply_markup=markup)
                continue
            except TelegramBadRequest as e:
                error = e
        log.error(
            "Telegram refused part %s of %s of a reply (%s UTF-16 units of HTML): %s",
            i + 1, len(parts), utf16_len(part), error,
        )
        await send_quietly(message, fallback, reply_markup=reply_markup)
        return False
    return True


async def send_quietly(
    message: Message, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
) -> bool:
    """Send ``text``; a 400 from Telegram is logged, not raised. True if it was sent."""
    try:
        await message.answer(text, reply_markup=reply_markup)
        return True
    except TelegramBadRequest as e:
        log.error("Telegram refused a reply to chat %s: %s", message.chat.id, e)
        return False


async def edit_markup_quietly(
    message: Message, reply_markup: InlineKeyboardMarkup | None
) -> None:
    """Replace a message's keyboard; a 400 (e.g. "message is not modified" after two quick
    taps, or a message too old to edit) is logged, not raised."""
    try:
        await message.edit_reply_markup(reply_markup=reply_markup)
    except TelegramBadRequest as e:
        log.info("keyboard of message %s not changed: %s", message.message_id, e)
