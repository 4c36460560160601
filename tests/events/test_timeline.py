"""Reading a user's history newest first, page by page (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relove.errors import InvalidInput
from relove.events import NewEvent, record_many
from relove.events.timeline import timeline

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


async def _seed(session_factory) -> None:
    names = ["message.received", "marker.changed", "command.used", "button.pressed"]
    events = [NewEvent(1, names[i % 4], {"i": i}, at=T0 + timedelta(minutes=i // 2))
              for i in range(25)]  # pairs share a timestamp: the id breaks the tie
    events += [NewEvent(2, "message.received", {"i": 100})]
    async with session_factory.begin() as s:
        await record_many(s, events, source="bot")


async def test_pages_walk_the_whole_history_newest_first(session_factory):
    await _seed(session_factory)
    seen, cursor = [], None
    async with session_factory() as s:
        while True:
            page = await timeline(s, 1, limit=7, cursor=cursor)
            seen += [e.props["i"] for e in page.events]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == list(range(24, -1, -1))


async def test_filters_by_name_pattern_and_time(session_factory):
    await _seed(session_factory)
    async with session_factory() as s:
        page = await timeline(s, 1, names="marker.*,command.used", limit=100)
        assert {e.name for e in page.events} == {"marker.changed", "command.used"}
        assert page.next_cursor is None
        page = await timeline(s, 1, since=T0 + timedelta(minutes=10), limit=100)
        assert [e.props["i"] for e in page.events] == [24, 23, 22, 21, 20]
        everyone = await timeline(s, None, names="message.received", limit=100)
        assert {e.user_id for e in everyone.events} == {1, 2}
        assert (await timeline(s, 1, names="*_*", limit=100)).events == []  # _ is literal


async def test_bad_input(session_factory):
    async with session_factory() as s:
        with pytest.raises(InvalidInput, match="cursor"):
            await timeline(s, 1, cursor="not-a-cursor")
        with pytest.raises(InvalidInput, match="limit"):
            await timeline(s, 1, limit=0)
