"""The bot side of the console: /login, role-checked admin commands, the live-chat handoff."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from relove.admins import login
from relove.admins.models import Role
from relove.admins.service import add_admin
from relove.db.models import User
from relove.users import service
from tests.bot.conftest import ADMIN_ID, BotHarness
from tests.bot.fake_telegram import message_update, tg_user


async def test_bot_login_sends_a_one_time_link(harness: BotHarness, session_factory) -> None:
    await harness.feed(message_update(tg_user(ADMIN_ID, "Админ"), "/login"))
    [reply] = harness.telegram.sent_texts(ADMIN_ID)
    match = re.search(r'href="http://127\.0\.0\.1:8080/auth/link/([\w-]+)"', reply)
    assert match is not None and "5 мин" in reply
    sent = [r for r in harness.telegram.requests if type(r).__name__ == "SendMessage"][-1]
    assert sent.link_preview_options is not None and sent.link_preview_options.is_disabled
    async with session_factory.begin() as s:
        assert await login.consume_login_token(s, match.group(1)) == ADMIN_ID


async def test_bot_login_is_for_admins_in_private_chats(harness: BotHarness) -> None:
    await harness.feed(message_update(tg_user(31, "Чужой"), "/login"))
    assert not any("auth/link" in t for t in harness.telegram.sent_texts(31))
    group = message_update(tg_user(ADMIN_ID), "/login")
    group["message"]["chat"] = {"id": -100, "type": "group", "title": "g"}
    await harness.feed(group)
    texts = harness.telegram.sent_texts(-100)
    assert texts and "auth/link" not in texts[-1]


async def test_bot_admin_commands_respect_roles(harness: BotHarness, session_factory) -> None:
    async with session_factory.begin() as s:
        s.add(User(id=50, first_name="Цель", markers={}))
        await add_admin(s, 61, Role.viewer)
        await add_admin(s, 62, Role.operator)
    viewer, operator = tg_user(61, "Вик"), tg_user(62, "Опер")
    await harness.feed(message_update(viewer, "/user 50"))
    assert any("50" in t for t in harness.telegram.sent_texts(61))  # viewers may look
    await harness.feed(message_update(viewer, "/mark 50 vip=true"))
    await harness.feed(message_update(viewer, "/login"))
    assert "auth/link" in harness.telegram.sent_texts(61)[-1]
    async with session_factory() as s:
        user = await s.get(User, 50)
        assert user is not None and "vip" not in user.markers  # viewers may not change
    await harness.feed(message_update(operator, "/mark 50 vip=true"))
    async with session_factory() as s:
        user = await s.scalar(select(User).where(User.id == 50).execution_options(
            populate_existing=True))
        assert user is not None and user.markers["vip"] is True


async def test_handoff_keeps_the_bot_silent(harness: BotHarness, session_factory) -> None:
    person = tg_user(70, "Ник")
    await harness.feed(message_update(person, "/start"))
    before = len(harness.telegram.sent_texts(70))
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    async with session_factory.begin() as s:  # what the console writes
        await service.set_values(s, 70, {"handoff_until": until}, doc="context")
    await harness.feed(message_update(person, "мне нужен человек"))
    assert len(harness.telegram.sent_texts(70)) == before  # no fallback, no companion
    async with session_factory() as s:
        user = await s.get(User, 70)
        assert user is not None and user.context["turns"][-1]["text"] == "мне нужен человек"
    await harness.feed(message_update(person, "/profile"))  # commands still work
    assert len(harness.telegram.sent_texts(70)) == before + 1
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    async with session_factory.begin() as s:
        await service.set_values(s, 70, {"handoff_until": past}, doc="context")
    await harness.feed(message_update(person, "привет"))
    assert len(harness.telegram.sent_texts(70)) == before + 2  # the fallback answers again
