"""Behavioural conditions: ``did EVENT [where …] [op N times] [within D]`` — the language, its
limits, and what it selects on both databases (events written by the real writer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from relove.broadcasts.content import MessageContent
from relove.broadcasts.models import Delivery
from relove.broadcasts.service import create_broadcast, start_broadcast
from relove.db.models import User
from relove.errors import FilterError
from relove.events.record import record
from relove.segments import Did, FilterTree, count_users, matches, parse_filter, save_segment
from relove.segments.lower import MAX_NESTING, MAX_TERMS, lower

NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    "text",
    [
        'did "message.received" within 7d',
        'did "message.received" >= 5 times within 30d',
        'not did "command.used" where command = "start"',
        'did "marker.changed" where (key = "city" and new = "Москва") within 1d',
        'did "link.clicked" = 0 times',
        'did "x" where props.did = 1 != 2 times within 12h and markers.did = 2',
        'did "x" where (not n exists or n.x in (1, 2)) < 3 times',
    ],
)
def test_text_and_json_forms_round_trip(text: str) -> None:
    tree = parse_filter(text)
    assert parse_filter(tree.to_text()) == tree
    assert FilterTree.from_json(tree.to_json()) == tree


def test_the_parts_of_a_did() -> None:
    tree = parse_filter('DID "message.received" WHERE (chat = 1) > 4 TIMES WITHIN 2w')
    assert isinstance(tree, Did)
    assert (tree.event, tree.op, tree.count, tree.within) == ("message.received", ">", 4, "2w")
    assert tree.to_json()["where"] == {"field": "props.chat", "op": "=", "value": 1}
    assert parse_filter('did "a" != 1 time') == Did("a", op="!=", count=1)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("did", 'an event name in quotes, like "message.received"'),
        ('did ""', "event name must be a non-empty string"),
        ('did "a" within 0d', "more than 0 and at most 3650d"),
        ('did "a" within 3651d', "at most 3650d"),
        ('did "a" within 7', "expected a duration like 7d"),
        ('did "a" >= 1.5 times', "whole number"),
        ('did "a" >= 1000001 times', "at most 1000000"),
        ('did "a" >= 5', "expected times"),
        ('did "a" where (segment:"s")', "cannot be used inside did … where"),
        ('did "a" where (did "b")', "cannot be used inside did … where"),
        ('did "a" where', "expected a field or ("),
    ],
)
def test_bad_did_is_one_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert info.value.position is None or 1 <= info.value.position <= len(text) + 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"did": 5}, "event name must be a non-empty string"),
        ({"did": "a", "count": 2}, "op and count go together"),
        ({"did": "a", "op": "~", "count": 2}, "unknown comparison"),
        ({"did": "a", "op": ">=", "count": -1}, "between 0 and 1000000"),
        ({"did": "a", "within": 7}, "duration text"),
        ({"did": "a", "where": {"segment": "s"}}, "cannot be used inside"),
        ({"did": "a", "when": "x"}, "unknown key 'when'"),
    ],
)
def test_bad_json_did_is_refused(data: dict, fragment: str) -> None:
    with pytest.raises(FilterError, match=fragment):
        FilterTree.from_json(data)


def test_where_counts_toward_the_nesting_and_size_budgets() -> None:
    deep = "n = 1"
    for _ in range(MAX_NESTING):
        deep = f"not ({deep})"
    parse_filter(deep)  # MAX_NESTING levels at the top …
    with pytest.raises(FilterError, match="nested too deeply"):
        parse_filter(f'did "a" where ({deep})')  # … one too many inside a where
    parse_filter(f'did "a" where ({deep.removeprefix("not ")})')
    values = ", ".join(str(i) for i in range(999))
    big = " or ".join([f'did "a" where n in ({values})'] * 2)
    lower(parse_filter(big), now=NOW)  # 2 × (999 + 1) terms: exactly the budget
    with pytest.raises(FilterError, match=f"more than {MAX_TERMS} comparisons"):
        lower(parse_filter(big + ' or did "b" = 1 times'), now=NOW)


def test_the_evaluator_refuses_did_without_the_users_events() -> None:
    with pytest.raises(FilterError, match="needs the user's events"):
        matches('did "a" = 0 times', {"id": 1})
    assert matches('did "a" = 0 times', {"id": 1, "events": []})


# -- what it selects, on both databases ---------------------------------------------------------
async def _history(session_factory) -> None:
    """1 wrote 6 times this week and /start; 2 wrote twice long ago and moved to Moscow today;
    3 did nothing; 4 used /help 3 times; 5 is inactive and wrote once yesterday."""
    async with session_factory.begin() as s:
        s.add_all([User(id=i, is_active=i != 5) for i in range(1, 6)])
        await s.flush()
        for k in range(6):
            await record(s, 1, "message.received", {"chat": 1}, source="bot",
                         at=NOW - timedelta(days=k % 6, hours=1))  # fmt: skip
        await record(s, 1, "command.used", {"command": "start"}, source="bot",
                     at=NOW - timedelta(days=2))  # fmt: skip
        for k in range(2):
            await record(s, 2, "message.received", {}, source="bot",
                         at=NOW - timedelta(days=40 + k))  # fmt: skip
        await record(s, 2, "marker.changed", {"key": "city", "old": "Тверь", "new": "Москва"},
                     source="cli", at=NOW - timedelta(hours=3))  # fmt: skip
        for _ in range(3):
            await record(s, 4, "command.used", {"command": "help"}, source="bot",
                         at=NOW - timedelta(days=1))  # fmt: skip
        await record(s, 5, "message.received", {}, source="bot", at=NOW - timedelta(days=1))
        await record(s, None, "message.received", {}, source="system", at=NOW)


FILTERS = [
    ('did "message.received" within 7d', {1, 5}),
    ('did "message.received"', {1, 2, 5}),
    ('did "message.received" >= 5 times within 30d', {1}),
    ('did "message.received" = 2 times', {2}),
    ('did "message.received" < 2 times', {3, 4, 5}),
    ('did "message.received" = 0 times within 7d', {2, 3, 4}),
    ('not did "command.used" where command = "start"', {2, 3, 4, 5}),
    ('did "command.used" where command = "help" >= 3 times', {4}),
    ('did "marker.changed" where (key = "city" and new = "Москва") within 1d', {2}),
    ('did "marker.changed" where (key = "city" and new = "Москва") within 1h', set()),
    ('did "message.received" within 7d and not did "command.used"', {5}),
    ('did "message.received" != 6 times within 7d or did "link.clicked"', {2, 3, 4, 5}),
]


@pytest.mark.parametrize(("text", "expected"), FILTERS)
async def test_did_selects_on_both_databases_as_the_evaluator_does(
    session_factory, text: str, expected: set[int]
) -> None:
    await _history(session_factory)
    async with session_factory() as s:
        ids = set((await s.execute(select(User.id))).scalars())
        assert await count_users(s, text) == len(expected)
        rows = await s.execute(select(User.id).where(
            User.id.in_(ids)).where(await _where(s, text)))  # fmt: skip
        assert set(rows.scalars()) == expected
        # The reference evaluator agrees, given each user's events.
        from relove.events.models import Event

        events = (await s.execute(select(Event.user_id, Event.name, Event.props, Event.at))).all()
    users = [{"id": i, "events": [e._asdict() for e in events if e.user_id == i]} for i in ids]
    assert {u["id"] for u in users if matches(text, u)} == expected


async def _where(session, text: str):  # type: ignore[no-untyped-def]
    from relove.segments import resolve_filter

    return await resolve_filter(session, text)


async def test_saved_segment_and_broadcast_audience_use_did(session_factory) -> None:
    await _history(session_factory)
    async with session_factory.begin() as s:
        await save_segment(s, "writers", 'did "message.received" within 7d')
        assert await count_users(s, 'segment:"writers" and not did "command.used"') == 1
        b = await create_broadcast(s, name="writers", filter_text='segment:"writers"',
                                   content=MessageContent("Привет"))  # fmt: skip
        assert await start_broadcast(s, b.id) == 1  # user 5 wrote too, but is inactive
        got = await s.execute(select(Delivery.user_id).where(Delivery.broadcast_id == b.id))
        assert list(got.scalars()) == [1]
        assert (await s.execute(select(func.count()).select_from(Delivery))).scalar_one() == 1


async def test_analytics_over_events_take_a_did_filter(session_factory) -> None:
    """The filter's own subquery over events stays apart from the analytics query's events."""
    from relove.analytics.events import event_counts

    await _history(session_factory)
    async with session_factory() as s:
        rows = await event_counts(s, names="message.received", days=60,
                                  flt='did "command.used" where command = "start"')  # fmt: skip
    assert sum(r.events for r in rows) == 6 and {r.users for r in rows} == {1}
