"""Touch through the real Dispatcher: every update with a user refreshes it, atomically."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from aiogram import Router
from aiogram.types import Message
from sqlalchemy import func, select

from relove.db.models import CONTEXT_MAX_BYTES, User, UserSnapshot
from relove.users import service
from tests.bot.conftest import BotHarness
from tests.bot.fake_telegram import callback_update, member_update, message_update, tg_user


async def test_concurrent_updates_for_new_users_zero_errors_zero_lost_writes(
    harness: BotHarness, session_factory
):
    users = [tg_user(10_000 + i, f"User{i}", username=f"u{i}") for i in range(50)]
    updates, last_text = [], {}
    for n in range(2000):
        user = random.choice(users)
        text = f"message {n} from {user['id']}"
        updates.append(message_update(user, text))
        last_text[user["id"]] = text
    # Fed concurrently, as aiogram's polling does (one task per update).
    results = await asyncio.gather(
        *(harness.dp.feed_raw_update(harness.bot, u) for u in updates), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    async with session_factory() as session:
        stored = {u.id: u for u in (await session.scalars(select(User))).all()}
        count = await session.scalar(select(func.count()).select_from(User))
    assert count == len(last_text)
    for user_id, text in last_text.items():
        assert stored[user_id].context["last_message"] == text
        assert stored[user_id].last_seen_at is not None
    assert len(harness.telegram.sent_texts()) == 2000  # every update got its reply


async def test_touch_refreshes_identity_and_keeps_other_context(harness, session_factory):
    await harness.feed(message_update(tg_user(1, "Old", username="old"), "hi"))
    async with session_factory.begin() as session:
        await service.set_values(session, 1, {"summary": "keeps"}, doc="context")
    await harness.feed(message_update(tg_user(1, "New", username="new", last_name="L"), "yo"))
    async with session_factory() as session:
        user = await session.get(User, 1)
    assert (user.first_name, user.last_name, user.username) == ("New", "L", "new")
    assert user.context["summary"] == "keeps"
    assert user.context["last_message"] == "yo"


async def test_non_message_updates_touch_without_last_message(harness, session_factory):
    await harness.feed(callback_update(tg_user(2, "Cb"), "unknown:data"))
    async with session_factory() as session:
        user = await session.get(User, 2)
    assert user is not None and user.last_seen_at is not None
    assert "last_message" not in user.context


async def test_handlers_receive_the_fresh_user(harness, session_factory):
    seen: list[UserSnapshot] = []
    probe = Router()

    async def capture(message: Message, user: UserSnapshot) -> None:
        seen.append(user)

    probe.message.register(capture)
    # Put the probe ahead of every other router.
    harness.dp.sub_routers.insert(0, probe)
    probe._parent_router = harness.dp
    await harness.feed(message_update(tg_user(3, "Fresh"), "first"))
    await harness.feed(message_update(tg_user(3, "Fresh"), "second"))
    assert [u.context["last_message"] for u in seen] == ["first", "second"]
    assert seen[-1].id == 3 and seen[-1].first_name == "Fresh"
    # A snapshot: an in-place edit fails loudly instead of being silently lost.
    with pytest.raises(TypeError):
        seen[-1].markers["vip"] = True  # type: ignore[index]


async def test_one_bad_row_does_not_fail_the_batch(harness, session_factory):
    # User 4's context is so full that its touch cannot add a last_message.
    await harness.feed(message_update(tg_user(4, "Full"), "x"))
    async with session_factory.begin() as session:
        await service.set_values(
            session, 4, {"blob": "y" * (CONTEXT_MAX_BYTES - 200)}, doc="context"
        )
    updates = [message_update(tg_user(4, "Full"), "z" * 1000)] + [
        message_update(tg_user(100 + i, "Ok"), f"ok {i}") for i in range(20)
    ]
    results = await asyncio.gather(
        *(harness.dp.feed_raw_update(harness.bot, u) for u in updates), return_exceptions=True
    )
    assert sum(isinstance(r, BaseException) for r in results) == 1
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 21


def _other_updates(user: dict) -> dict[str, dict]:
    """One raw update of each other kind that carries a user (Bot API shapes)."""
    chat = {"id": user["id"], "type": "private"}
    group = {"id": -100500, "type": "supergroup", "title": "reLove"}
    now = 1_790_000_000
    return {
        "edited_message": {
            "message_id": 5, "date": now, "edit_date": now, "chat": chat, "from": user,
            "text": "edited",
        },
        "inline_query": {"id": "iq", "from": user, "query": "yoga", "offset": ""},
        "chosen_inline_result": {"result_id": "r1", "from": user, "query": "yoga"},
        "chat_join_request": {
            "chat": group, "from": user, "user_chat_id": user["id"], "date": now,
        },
        "pre_checkout_query": {
            "id": "pc", "from": user, "currency": "XTR", "total_amount": 5,
            "invoice_payload": "p",
        },
        "shipping_query": {
            "id": "sq", "from": user, "invoice_payload": "p",
            "shipping_address": {
                "country_code": "RU", "state": "", "city": "Москва", "street_line1": "a",
                "street_line2": "", "post_code": "101000",
            },
        },
        "poll_answer": {
            "poll_id": "p1", "user": user, "option_ids": [0], "option_persistent_ids": ["a"],
        },
        "message_reaction": {
            "chat": group, "message_id": 7, "user": user, "date": now,
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        },
    }  # fmt: skip


async def test_every_kind_of_update_with_a_user_touches_it(harness, session_factory):
    kinds = _other_updates(tg_user(1))
    for n, (kind, payload) in enumerate(kinds.items()):
        user_id = 500 + n
        payload = json.loads(json.dumps(payload))  # a fresh copy per kind
        for key in ("from", "user"):
            if key in payload:
                payload[key] = tg_user(user_id, f"Kind{n}")
        if kind == "edited_message":
            payload["chat"]["id"] = user_id
        await harness.dp.feed_raw_update(harness.bot, {"update_id": 10_000 + n, kind: payload})
    async with session_factory() as session:
        stored = {u.id: u for u in (await session.scalars(select(User))).all()}
    assert sorted(stored) == [500 + n for n in range(len(kinds))]
    assert all(u.last_seen_at is not None for u in stored.values())
    # Only new messages set last_message; an edit of an old one does not.
    assert all("last_message" not in u.context for u in stored.values())


async def test_writing_in_private_reactivates_a_user(harness, session_factory):
    """A user marked inactive (blocked, or a broadcast's 403) who writes again is active."""
    kate = tg_user(20, "Kate")
    await harness.feed(message_update(kate, "hi"), member_update(kate, "kicked"))
    async with session_factory() as session:
        assert (await session.get(User, 20)).is_active is False
    await harness.feed(message_update(kate, "/start"))
    async with session_factory() as session:
        assert (await session.get(User, 20)).is_active is True


async def test_group_messages_do_not_reactivate(harness, session_factory):
    kate = tg_user(21, "Kate")
    await harness.feed(message_update(kate, "hi"), member_update(kate, "kicked"))
    group_message = message_update(kate, "in a group")
    group_message["message"]["chat"] = {"id": -100, "type": "group", "title": "g"}
    await harness.feed(group_message)
    async with session_factory() as session:
        assert (await session.get(User, 21)).is_active is False
