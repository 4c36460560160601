"""Rendering of users for people, as Telegram HTML with every stored value escaped."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from relove.bot.texts import Texts
from relove.db.models import User, UserSnapshot

MAX_VALUE_CHARS = 300


def _value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return html.escape(text, quote=False)


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, path + "."))
        else:
            rows.append((path, value))
    return rows


def document_lines(doc: Mapping[str, Any] | None, texts: Texts) -> list[str]:
    rows = _flatten(doc or {})
    if not rows:
        return [texts("profile_empty")]
    return [f"• {html.escape(key, quote=False)}: {_value(value)}" for key, value in rows]


def _props(props: Mapping[str, Any], limit: int = 80) -> str:
    text = json.dumps(dict(props), ensure_ascii=False, separators=(",", ":")) if props else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def with_history(card: str, events: Sequence[Any], texts: Texts, *, limit: int = 4000) -> str:
    """The card followed by the user's recent events (newest first), as many as fit."""
    lines = ["", texts("events_recent")]
    if not events:
        lines.append(texts("events_recent_empty"))
    for e in events:
        lines.append(texts("events_recent_line", at=f"{e.at:%Y-%m-%d %H:%M}", name=e.name,
                           props=_props(e.props)))  # fmt: skip
    while len(lines) > 2 and len(card) + sum(len(line) + 1 for line in lines) > limit:
        lines.pop()
    return "\n".join([card, *lines]) if len(lines) > 2 or not events else card


def user_card(user: User | UserSnapshot, texts: Texts, *, title: str) -> str:
    """A readable card: identity, then markers and context, each value escaped."""
    gender = str(getattr(user.gender, "value", user.gender) or "unknown")
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or "—"
    lines = [
        title,
        f"{texts('field_name')}: {html.escape(name, quote=False)}",
        f"{texts('field_username')}: "
        + (f"@{html.escape(user.username, quote=False)}" if user.username else "—"),
        f"{texts('field_gender')}: {texts('gender_' + gender)}",
        f"{texts('field_active')}: {texts('word_yes' if user.is_active else 'word_no')}",
    ]
    if user.created_at:
        lines.append(f"{texts('field_first_seen')}: {user.created_at:%Y-%m-%d %H:%M} UTC")
    if user.last_seen_at:
        lines.append(f"{texts('field_last_seen')}: {user.last_seen_at:%Y-%m-%d %H:%M} UTC")
    lines += ["", texts("profile_markers"), *document_lines(user.markers, texts)]
    lines += ["", texts("profile_context"), *document_lines(user.context, texts)]
    card = "\n".join(lines)
    return card[:4000] + ("…" if len(card) > 4000 else "")
