"""The broadcast composer's form as the broadcasts service's inputs, and tracked links.

Buttons are written one per line as ``label | URL``; a line holding only ``---`` starts a new
row, otherwise each button gets a row of its own. With link tracking on, every http(s) button
goes through ``/l/…`` on the console (see :mod:`relove.broadcasts.links`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts.content import Button, MessageContent
from relove.broadcasts.links import TrackedLink, new_key
from relove.broadcasts.models import Broadcast, MediaKind
from relove.errors import InvalidInput

MAX_BUTTONS = 20


@dataclass
class ComposeForm:
    name: str = ""
    filter: str = ""
    text: str = ""
    buttons: str = ""
    photo: str = ""
    schedule: str = ""
    track: bool = True

    def content(self) -> MessageContent:
        photo = self.photo.strip()
        return MessageContent(
            text=self.text.replace("\r\n", "\n"),
            media_kind=MediaKind.photo if photo else None,
            media=photo or None,
            buttons=parse_buttons(self.buttons),
        )

    def scheduled_at(self) -> datetime | None:
        """The schedule field (a browser's datetime-local, read as UTC)."""
        raw = self.schedule.strip()
        if not raw:
            return None
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"{raw!r} is not a date and time") from None
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def parse_buttons(text: str) -> tuple[tuple[Button, ...], ...]:
    rows: list[list[Button]] = []
    grouping = False
    count = 0
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if not line:
            continue
        if line == "---":
            grouping = True
            rows.append([])
            continue
        count += 1
        if count > MAX_BUTTONS:
            raise InvalidInput(f"at most {MAX_BUTTONS} buttons")
        button = Button.parse(line)
        if grouping and rows:
            rows[-1].append(button)
        else:
            rows.append([button])
    return tuple(tuple(r) for r in rows if r)


def buttons_text(rows: Any) -> str:
    """The composer's text for stored button rows (the inverse of :func:`parse_buttons`)."""
    lines: list[str] = []
    for row in rows or []:
        if len(row) > 1:
            lines.append("---")
        lines += [f"{b['text']} | {b['url']}" for b in row]
    return "\n".join(lines)


async def track_links(session: AsyncSession, broadcast: Broadcast, base_url: str) -> int:
    """Route the broadcast's http(s) buttons through the console; returns how many."""
    ids: list[list[int | None]] = []
    tracked = 0
    for row in broadcast.buttons or []:
        row_ids: list[int | None] = []
        for b in row:
            if str(b["url"]).lower().startswith(("http://", "https://")):
                link = TrackedLink(broadcast_id=broadcast.id, url=b["url"], label=b["text"][:64])
                session.add(link)
                await session.flush()
                row_ids.append(link.id)
                tracked += 1
            else:
                row_ids.append(None)
        ids.append(row_ids)
    if tracked:
        broadcast.options = {**(broadcast.options or {}),
                             "links": {"base": base_url, "key": new_key(), "ids": ids}}
        await session.flush()
    return tracked
