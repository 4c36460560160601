"""An outgoing message and its ONE encoding as a Bot API call.

:func:`encode` turns an :class:`OutgoingMessage` into the Bot API method name and JSON body
(``parse_mode`` HTML, the bot's default). The lean client POSTs that body as is; the aiogram
path builds the same method from it (:func:`relove.telegram.bot.send_message`), so a broadcast,
its preview and its test send are encoded by the same lines.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from relove.errors import InvalidInput
from relove.telegram.limits import BUTTON_TEXT_LIMIT

#: URL schemes Telegram accepts on a URL button
BUTTON_SCHEMES = ("http", "https", "tg")


class MediaKind(enum.StrEnum):
    photo = "photo"
    document = "document"


#: Bot API method per media kind (``None``: a text message)
_METHOD = {None: "sendMessage", MediaKind.photo: "sendPhoto", MediaKind.document: "sendDocument"}


@dataclass(frozen=True, slots=True)
class Button:
    """An inline URL button, or (``callback_data`` set, ``url`` empty) a button whose press
    comes back to the bot — a scenario question's options sent by an automation."""

    text: str
    url: str
    callback_data: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Button:
        """``"label|url"`` → a URL button."""
        label, sep, url = spec.partition("|")
        label, url = label.strip(), url.strip()
        if not sep or not label or not url:
            raise InvalidInput(f"button {spec!r}: expected 'label|url'")
        return cls(label, url).checked()

    def checked(self) -> Button:
        """The button itself, or :class:`InvalidInput` when Telegram would refuse it."""
        if len(self.text) > BUTTON_TEXT_LIMIT:
            raise InvalidInput(
                f"button {self.text!r}: label longer than {BUTTON_TEXT_LIMIT} characters"
            )
        if self.callback_data is not None:
            if not 1 <= len(self.callback_data.encode()) <= 64:
                raise InvalidInput(f"button {self.text!r}: callback data is 1-64 bytes")
            return self
        parsed = urlparse(self.url)
        if parsed.scheme not in BUTTON_SCHEMES or not (parsed.netloc or parsed.scheme == "tg"):
            raise InvalidInput(f"button {self.text!r}: {self.url!r} is not an http(s) or tg URL")
        return self


Keyboard = tuple[tuple[Button, ...], ...]


def keyboard_json(rows: Keyboard) -> list[list[dict[str, str]]]:
    """Rows of URL (or callback) buttons as the Bot API's ``inline_keyboard``."""
    return [[{"text": b.text, "callback_data": b.callback_data} if b.callback_data is not None
             else {"text": b.text, "url": b.url} for b in row] for row in rows]  # fmt: skip


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A concrete message: Telegram-HTML text (the caption when there is media), an optional
    photo or document (URL or file_id) and rows of URL buttons."""

    text: str
    media_kind: MediaKind | None = None
    media: str | None = None
    buttons: Keyboard = ()


def encode(
    chat_id: int | str, message: OutgoingMessage, *, paid: bool = False
) -> tuple[str, dict[str, Any]]:
    """The Bot API method and JSON body that send ``message`` to ``chat_id``; ``paid`` sends it
    with ``allow_paid_broadcast`` (Telegram's 1000/s tier)."""
    body: dict[str, Any] = {"chat_id": chat_id, "parse_mode": "HTML"}
    kind = message.media_kind
    if kind is None:
        body["text"] = message.text
    else:
        body[kind.value] = message.media or ""
        if message.text:
            body["caption"] = message.text
    if message.buttons:
        body["reply_markup"] = {"inline_keyboard": keyboard_json(message.buttons)}
    if paid:
        body["allow_paid_broadcast"] = True
    return _METHOD[kind], body
