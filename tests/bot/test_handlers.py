"""Every handler through the real Dispatcher; Telegram faked at the session level."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.db.models import User
from relove.users import service
from tests.bot.conftest import ADMIN_ID, BotHarness
from tests.bot.fake_telegram import callback_update, member_update, message_update, tg_user


async def _user(sessions: async_sessionmaker[AsyncSession], user_id: int) -> User | None:
    """The user as stored now (a fresh session: no stale snapshot)."""
    async with sessions() as session:
        return await session.scalar(select(User).where(User.id == user_id))


async def test_start_records_first_and_last_source(harness: BotHarness, session_factory):
    anna = tg_user(1, "Анна", username="anna")
    await harness.feed(message_update(anna, "/start src_instagram"))
    await harness.feed(message_update(anna, "/start ads_nov"))
    user = await _user(session_factory, 1)
    assert user is not None
    assert user.markers["source"] == "src_instagram"
    assert user.markers["last_source"] == "ads_nov"
    welcome = harness.telegram.sent_texts(1)[0]
    assert "Анна" in welcome


async def test_start_escapes_the_users_name(harness: BotHarness):
    await harness.feed(message_update(tg_user(2, "<b>Evil</b> & co"), "/start"))
    welcome = harness.telegram.sent_texts(2)[0]
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; co" in welcome
    assert "<b>Evil" not in welcome


async def test_start_ignores_an_invalid_payload(harness: BotHarness, session_factory):
    await harness.feed(message_update(tg_user(3), "/start bad$payload!"))
    user = await _user(session_factory, 3)
    assert user is not None and "source" not in user.markers


async def test_profile_shows_stored_markers_escaped(harness: BotHarness, session_factory):
    bob = tg_user(4, "Bob")
    await harness.feed(message_update(bob, "hello"))
    async with session_factory.begin() as session:
        await service.set_values(session, 4, {"city": "Москва", "note": "<i>x</i>"})
    await harness.feed(message_update(bob, "/profile"))
    card = harness.telegram.sent_texts(4)[-1]
    assert "city: Москва" in card
    assert "&lt;i&gt;x&lt;/i&gt;" in card
    assert "last_message: /profile" in card


async def test_forget_deletes_after_confirm(harness: BotHarness, session_factory):
    eve = tg_user(5, "Eve")
    await harness.feed(message_update(eve, "/forget"))
    ask = harness.telegram.requests[-1]
    buttons = ask.reply_markup.inline_keyboard[0]
    assert await _user(session_factory, 5) is not None
    await harness.feed(callback_update(eve, buttons[1].callback_data))  # cancel
    assert await _user(session_factory, 5) is not None
    await harness.feed(callback_update(eve, buttons[0].callback_data))  # confirm
    # The callback's own touch recreated nothing after the delete: the row is gone.
    assert await _user(session_factory, 5) is None
    assert "удалены" in harness.telegram.sent_texts(5)[-1]


async def test_any_text_gets_the_default_reply_and_is_remembered(
    harness: BotHarness, session_factory
):
    await harness.feed(message_update(tg_user(6), "как дела?"))
    assert "Спасибо" in harness.telegram.sent_texts(6)[-1]
    user = await _user(session_factory, 6)
    assert user is not None and user.context["last_message"] == "как дела?"


async def test_block_and_unblock_toggle_is_active(harness: BotHarness, session_factory):
    kate = tg_user(7, "Kate")
    await harness.feed(message_update(kate, "hi"))
    await harness.feed(member_update(kate, "kicked"))
    assert (await _user(session_factory, 7)).is_active is False
    await harness.feed(member_update(kate, "member"))
    assert (await _user(session_factory, 7)).is_active is True


async def test_admin_commands(harness: BotHarness, session_factory):
    admin = tg_user(ADMIN_ID, "Admin")
    await harness.feed(message_update(tg_user(8, "Target"), "hi"))
    await harness.feed(message_update(admin, "/mark 8 city=Казань vip=true score=5"))
    assert "city: Казань" in harness.telegram.sent_texts(ADMIN_ID)[-1]
    user = await _user(session_factory, 8)
    assert user.markers == {"city": "Казань", "vip": True, "score": 5}
    await harness.feed(message_update(admin, "/unmark 8 vip"))
    assert (await _user(session_factory, 8)).markers == {"city": "Казань", "score": 5}
    await harness.feed(message_update(admin, "/user 8"))
    assert "Target" in harness.telegram.sent_texts(ADMIN_ID)[-1]
    await harness.feed(message_update(admin, "/user 999"))
    assert "999" in harness.telegram.sent_texts(ADMIN_ID)[-1]
    await harness.feed(message_update(admin, "/mark 8 =oops"))
    assert "/mark" in harness.telegram.sent_texts(ADMIN_ID)[-1]


async def test_admin_commands_are_refused_to_others(harness: BotHarness, session_factory):
    await harness.feed(message_update(tg_user(9, "Target"), "hi"))
    await harness.feed(message_update(tg_user(10, "Mallory"), "/mark 9 vip=true"))
    assert (await _user(session_factory, 9)).markers == {}
    assert "Спасибо" in harness.telegram.sent_texts(10)[-1]
