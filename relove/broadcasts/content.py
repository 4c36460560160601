"""A broadcast's message and its personalisation.

The message text is Telegram HTML written by an operator; ``{{ … }}`` substitutes values about the
recipient (``{{ user.first_name }}``, ``{{ markers.city | default("") }}``), each one escaped,
so a user named ``<b>`` can never break the markup. The template engine — sandboxed, bounded,
rendered off the event loop — is :mod:`relove.templating`. Templates are checked when the
broadcast is created: syntax, the names they use, and a render against sample recipients whose
HTML must pass Telegram's rules. A value missing for some user renders as an empty string
(never an error mid-send).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relove.errors import InvalidInput
from relove.telegram.html import check_html
from relove.telegram.limits import CAPTION_LIMIT, TEXT_LIMIT
from relove.telegram.message import Button, MediaKind, OutgoingMessage, keyboard_json
from relove.templating import Template, TemplateRenderError

#: The concrete message for one recipient (what :mod:`relove.telegram` encodes and sends).
RenderedMessage = OutgoingMessage
#: What a broadcast template sees: ``user`` (these fields), ``markers`` and ``context``.
USER_FIELDS = ("id", "username", "first_name", "last_name", "full_name", "gender", "markers",
               "context")  # fmt: skip
TEMPLATE_NAMES = {"user": USER_FIELDS, "markers": (), "context": ()}

__all__ = ["Button", "MediaKind", "MessageContent", "MessageTemplate", "Recipient",
           "RenderedMessage", "TemplateRenderError"]  # fmt: skip


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


class MessageTemplate:
    """A compiled message; :meth:`render` personalises it for one recipient."""

    def __init__(
        self,
        content: MessageContent,
        buttons_for: Callable[[int], tuple[tuple[Button, ...], ...]] | None = None,
        *,
        check_names: bool = True,
    ) -> None:
        """``check_names=False`` for a broadcast already stored: a template saved before
        unknown names were refused still sends (those names render empty, as they did)."""
        self.content = content
        #: per-recipient buttons (tracked links: relove.broadcasts.links), by user id
        self.buttons_for = buttons_for
        if content.media_kind is not None and not content.media:
            raise InvalidInput(f"a {content.media_kind} needs a URL or file_id")
        if not content.text.strip() and content.media_kind is None:
            raise InvalidInput("the message text is empty")
        self._template = Template(content.text, names=TEMPLATE_NAMES, guess="markers",
                                  check_names=check_names)  # fmt: skip
        for row in content.buttons:
            for button in row:
                button.checked()

    @property
    def limit(self) -> int:
        return CAPTION_LIMIT if self.content.media_kind else TEXT_LIMIT

    def render(self, recipient: Recipient) -> RenderedMessage:
        """The message for one recipient, rendered here (bounded; prefer :meth:`arender` on
        the event loop)."""
        try:
            text = self._template.render(recipient.variables())
        except TemplateRenderError as e:
            raise TemplateRenderError(f"{e} (user {recipient.id})") from e
        c = self.content
        buttons = self.buttons_for(recipient.id) if self.buttons_for else c.buttons
        return RenderedMessage(text, c.media_kind, c.media, buttons)

    async def arender(self, recipient: Recipient) -> RenderedMessage:
        """:meth:`render` in a worker thread: the event loop never waits for a template."""
        try:
            text = await self._template.arender(recipient.variables())
        except TemplateRenderError as e:
            raise TemplateRenderError(f"{e} (user {recipient.id})") from e
        c = self.content
        buttons = self.buttons_for(recipient.id) if self.buttons_for else c.buttons
        return RenderedMessage(text, c.media_kind, c.media, buttons)

    async def validate(self, samples: list[Recipient]) -> list[RenderedMessage]:
        """Render for each sample (plus a user with no data at all) and check the HTML."""
        rendered = []
        for recipient in [*samples, Recipient(id=0)]:
            message = await self.arender(recipient)
            check_html(
                message.text, limit=self.limit, allow_empty=self.content.media_kind is not None
            )
            rendered.append(message)
        return rendered[: len(samples)]
