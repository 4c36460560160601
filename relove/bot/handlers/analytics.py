"""Admin analytics commands (any admin, viewers included): /find, /stats, /breakdown.

Thin handlers: parse, call :mod:`relove.segments` / :mod:`relove.analytics`, render with
escaped values. A bad filter gets a polite reply naming the problem; nothing changes.
"""

from __future__ import annotations

import json
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.analytics import breakdown, overview
from relove.analytics.events import event_counts
from relove.bot.filters import IsAdmin
from relove.bot.texts import Texts
from relove.errors import InvalidInput
from relove.segments import count_users, field_from_text, find_users, parse_filter

FIND_SHOWN = 10
TODAY_EVENTS = 10
BREAKDOWN_TOP = 15
MAX_VALUE_CHARS = 60


def _value(value: Any, texts: Texts) -> str:
    if value is None:
        return texts("analytics_not_set")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


async def find(message: Message, command: CommandObject, session: AsyncSession,
               texts: Texts) -> None:  # fmt: skip
    text = (command.args or "").strip()
    if not text:
        await message.answer(texts("analytics_find_usage"))
        return
    try:
        parse_filter(text)
        total = await count_users(session, text)
        users = await find_users(session, text, limit=FIND_SHOWN)
    except InvalidInput as e:
        await message.answer(texts("analytics_bad_filter", error=str(e)))
        return
    lines = [texts("analytics_find_result", count=total)]
    for u in users:
        lines.append(
            texts(
                "analytics_user_line",
                id=u.id,
                name=u.full_name,
                username=f"@{u.username}" if u.username else "",
            ).rstrip()
        )
    if total > len(users):
        lines.append(texts("analytics_find_more", more=total - len(users)))
    await message.answer("\n".join(lines))


async def stats(message: Message, session: AsyncSession, texts: Texts) -> None:
    o = await overview(session, days=7, sources=5)
    a = o.activity
    lines = [
        texts("analytics_stats", total=o.total, active=o.active, inactive=o.inactive,
              dau=a.dau, wau=a.wau, mau=a.mau, days=o.days,
              new=sum(n for _, n in o.new_per_day)),  # fmt: skip
        texts("analytics_stats_gender",
              items=", ".join(f"{g}: {n}" for g, n in o.by_gender.items()) or "—"),  # fmt: skip
        texts("analytics_stats_source"),
    ]
    lines += _rows(o.by_source, texts)
    lines += await _today_events(session, texts)
    await message.answer("\n".join(lines))


async def _today_events(session: AsyncSession, texts: Texts) -> list[str]:
    """Today's events (UTC), most frequent names first."""
    counts = await event_counts(session, days=1)
    counts.sort(key=lambda c: (-c.events, c.name))
    lines = [texts("events_today", total=sum(c.events for c in counts))]
    lines += [texts("events_today_line", name=c.name, count=c.events)
              for c in counts[:TODAY_EVENTS]]  # fmt: skip
    return lines


def _rows(b: Any, texts: Texts) -> list[str]:
    lines = [
        texts("analytics_breakdown_row", value=_value(r.value, texts), count=r.count,
              share=f"{r.share:.1%}")  # fmt: skip
        for r in b.rows
    ]
    if b.other:
        lines.append(texts("analytics_other", count=b.other))
    if b.not_set:
        lines.append(texts("analytics_breakdown_row", value=texts("analytics_not_set"),
                           count=b.not_set,
                           share=f"{b.not_set / b.total:.1%}" if b.total else "0%"))  # fmt: skip
    return lines or [texts("analytics_empty")]


async def breakdown_cmd(message: Message, command: CommandObject, session: AsyncSession,
                        texts: Texts) -> None:  # fmt: skip
    field, _, rest = (command.args or "").strip().partition(" ")
    if not field:
        await message.answer(texts("analytics_breakdown_usage"))
        return
    flt = rest.strip() or None
    try:
        field_from_text(field)
        if flt is not None:
            parse_filter(flt)
        b = await breakdown(session, field, flt, top=BREAKDOWN_TOP)
    except InvalidInput as e:
        await message.answer(texts("analytics_bad_filter", error=str(e)))
        return
    lines = [texts("analytics_breakdown_title", field=b.field, total=b.total), *_rows(b, texts)]
    await message.answer("\n".join(lines))


def create_router() -> Router:
    router = Router(name="analytics")
    # The command first: the admins table is read only for these commands.
    router.message.register(find, Command("find"), IsAdmin())
    router.message.register(stats, Command("stats"), IsAdmin())
    router.message.register(breakdown_cmd, Command("breakdown"), IsAdmin())
    return router
