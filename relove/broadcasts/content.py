"""A broadcast's message and its personalisation (Jinja2, sandboxed, every value HTML-escaped).

The message text is Telegram HTML written by an operator; ``{{ … }}`` substitutes values about the
recipient (``{{ user.first_name }}``, ``{{ markers.city | default("") }}``), each one escaped,
so a user named ``<b>`` can never break the markup. Templates are checked when the broadcast is
created: syntax, and a render against sample recipients whose HTML must pass Telegram's rules.
A value missing for some user renders as an empty string (never an error mid-send).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from relove.errors import InvalidInput
from relove.telegram.html import check_html
from relove.telegram.limits import CAPTION_LIMIT, TEXT_LIMIT
from relove.telegram.message import Button, MediaKind, OutgoingMessage, keyboard_json

#: The concrete message for one recipient (what :mod:`relove.telegram` encodes and sends).
RenderedMessage = OutgoingMessage


class TemplateRenderError(InvalidInput):
    """A template failed to render for one recipient."""


@dataclass(frozen=True, slots=True)
class MessageContent:
    """What every recipient gets, before personalisation."""

    text: str
    media_kind: MediaKind | None = None
    media: str | None = None
    #: rows of URL buttons
    buttons: tuple[tuple[Button, ...], ...] = ()

    def buttons_json(self) -> list[list[dict[str, str]]]:
        return keyboard_json(self.buttons)

    @staticmethod
    def buttons_from_json(rows: Any) -> tuple[tuple[Button, ...], ...]:
        return tuple(tuple(Button(b["text"], b["url"]) for b in row) for row in rows or [])


@dataclass(slots=True)
class Recipient:
    """The user fields a template can see (a row of ``users``, detached from the ORM)."""

    id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str = "unknown"
    markers: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or (
            f"@{self.username}" if self.username else str(self.id)
        )

    def variables(self) -> dict[str, Any]:
        user = {
            "id": self.id,
            "username": self.username or "",
            "first_name": self.first_name or "",
            "last_name": self.last_name or "",
            "full_name": self.full_name,
            "gender": self.gender,
            "markers": self.markers or {},
            "context": self.context or {},
        }
        return {"user": user, "markers": user["markers"], "context": user["context"]}


_ENV = SandboxedEnvironment(
    autoescape=True, undefined=ChainableUndefined, keep_trailing_newline=True
)


class MessageTemplate:
    """A compiled message; :meth:`render` personalises it for one recipient."""

    def __init__(
        self,
        content: MessageContent,
        buttons_for: Callable[[int], tuple[tuple[Button, ...], ...]] | None = None,
    ) -> None:
        self.content = content
        #: per-recipient buttons (tracked links: relove.broadcasts.links), by user id
        self.buttons_for = buttons_for
        if content.media_kind is not None and not content.media:
            raise InvalidInput(f"a {content.media_kind} needs a URL or file_id")
        if not content.text.strip() and content.media_kind is None:
            raise InvalidInput("the message text is empty")
        try:
            self._template = _ENV.from_string(content.text)
        except TemplateError as e:
            line = getattr(e, "lineno", None)
            where = f" (line {line})" if line else ""
            raise InvalidInput(f"template error{where}: {e.message or e}") from e
        for row in content.buttons:
            for button in row:
                button.checked()

    @property
    def limit(self) -> int:
        return CAPTION_LIMIT if self.content.media_kind else TEXT_LIMIT

    def render(self, recipient: Recipient) -> RenderedMessage:
        try:
            text = self._template.render(recipient.variables())
        except Exception as e:  # any error inside the sandboxed template is the template's fault
            raise TemplateRenderError(f"template error for user {recipient.id}: {e}") from e
        c = self.content
        buttons = self.buttons_for(recipient.id) if self.buttons_for else c.buttons
        return RenderedMessage(text, c.media_kind, c.media, buttons)

    def validate(self, samples: list[Recipient]) -> list[RenderedMessage]:
        """Render for each sample (plus a user with no data at all) and check the HTML."""
        rendered = []
        for recipient in [*samples, Recipient(id=0)]:
            message = self.render(recipient)
            check_html(
                message.text, limit=self.limit, allow_empty=self.content.media_kind is not None
            )
            rendered.append(message)
        return rendered[: len(samples)]
