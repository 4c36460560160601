"""Progress of a broadcast started from the bot: one message edited in place, then final stats."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from relove.broadcasts.models import Broadcast
from relove.broadcasts.service import BroadcastStats
from relove.telegram.client import BotApiClient
from relove.telegram.outcomes import Outcome

log = logging.getLogger(__name__)


class Texts(Protocol):
    """The bot's texts (:class:`relove.bot.texts.Texts`): ``texts(key, **values)``."""

    def __call__(self, key: str, /, **values: Any) -> str: ...


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(texts: Texts, stats: BroadcastStats, *, final: bool) -> str:
    values = dict(
        id=stats.id, status=stats.status, targeted=stats.targeted, sent=stats.sent,
        blocked=stats.blocked, failed=stats.failed, unknown=stats.unknown,
        pending=stats.pending + stats.sending, rate=f"{stats.rate:.1f}",
        eta=format_eta(stats.eta_seconds), reason=stats.reason or "",
    )
    return texts("broadcast_final" if final else "broadcast_progress", **values).strip()


class ProgressMessages:
    """The runner's progress hook: edits the admin's message named in the broadcast options
    (over the lean Bot API client, so a worker process never loads aiogram)."""

    def __init__(self, client: BotApiClient, texts: Texts) -> None:
        self.client = client
        self.texts = texts
        self._last: dict[int, str] = {}

    async def __call__(self, broadcast: Broadcast, stats: BroadcastStats, final: bool) -> None:
        opts = broadcast.options or {}
        chat_id, message_id = opts.get("progress_chat_id"), opts.get("progress_message_id")
        if not chat_id or not message_id:
            return
        text = progress_text(self.texts, stats, final=final)
        if self._last.get(broadcast.id) == text:
            return
        self._last[broadcast.id] = text
        if final:
            self._last.pop(broadcast.id, None)
        result = await self.client.edit_message_text(int(chat_id), int(message_id), text)
        if result.outcome is not Outcome.sent:
            log.info("broadcast %s: progress message not edited: %s", broadcast.id, result.error)
