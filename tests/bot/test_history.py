"""Admin commands and /forget record their history (both databases)."""

from __future__ import annotations

from sqlalchemy import select

from relove.broadcasts.conversation import conversation
from relove.db.models import User
from relove.events import Event
from tests.bot.conftest import ADMIN_ID, BotHarness
from tests.bot.fake_telegram import callback_update, message_update, tg_user

ADMIN = tg_user(ADMIN_ID, "Админ")


async def _events(session_factory, user_id: int) -> list[Event]:
    query = select(Event).where(Event.user_id == user_id).order_by(Event.id)
    async with session_factory() as s:
        return list((await s.execute(query)).scalars())


async def test_admin_marks_are_attributed(harness: BotHarness, session_factory):
    await harness.feed(message_update(tg_user(24), "hi"))
    await harness.feed(message_update(ADMIN, "/mark 24 city=Тверь vip=true"))
    await harness.feed(message_update(ADMIN, "/unmark 24 vip"))
    events = [e for e in await _events(session_factory, 24)
              if e.name == "marker.changed" and e.source == "bot"]  # not the gender inference
    assert [(e.props["key"], e.props["old"], e.props["new"], e.source, e.actor)
            for e in events] == [
        ("city", None, "Тверь", "bot", f"admin:{ADMIN_ID}"),
        ("vip", None, True, "bot", f"admin:{ADMIN_ID}"),
        ("vip", True, None, "bot", f"admin:{ADMIN_ID}"),
    ]  # fmt: skip


async def test_forget_leaves_only_user_deleted(harness: BotHarness, session_factory):
    u = tg_user(25)
    await harness.feed(message_update(u, "hi"), message_update(ADMIN, "/mark 25 city=Москва"))
    assert await _events(session_factory, 25)
    await harness.feed(message_update(u, "/forget"))
    await harness.feed(callback_update(u, "forget:1"))
    async with session_factory() as s:
        assert await s.get(User, 25) is None
    assert [(e.name, e.props) for e in await _events(session_factory, 25)] == [
        ("user.deleted", {})
    ]


async def test_replies_are_logged_in_the_conversation(harness: BotHarness, session_factory):
    await harness.feed(message_update(tg_user(31, "Оля"), "/start"))
    await harness.dp.workflow_data["message_log"].flush()
    async with session_factory() as s:
        page = await conversation(s, 31)
    reply, incoming = page.items  # newest first
    assert (incoming.direction, incoming.text) == ("in", "/start")
    assert (reply.direction, reply.kind, reply.source) == ("out", "text", "bot")
    assert reply.text == harness.telegram.sent_texts(31)[0]
    assert reply.message_id is not None


async def test_user_card_shows_the_last_ten_events(harness: BotHarness, session_factory):
    from relove.events import NewEvent, record_many

    u = tg_user(26, "Оля")
    await harness.feed(message_update(u, "hi"))
    async with session_factory.begin() as s:
        await record_many(s, [NewEvent(26, "page.viewed", {"n": i, "x": "<b>"})
                              for i in range(12)], source="api")  # fmt: skip
    await harness.feed(message_update(ADMIN, "/user 26"))
    card = harness.telegram.sent_texts(ADMIN_ID)[-1]
    lines = card.split("\n\n")[-1].splitlines()
    events = [line for line in lines if line.startswith("<code>20")]
    assert len(events) == 10  # the newest ten, whatever their names
    viewed = [line for line in events if "page.viewed" in line]
    assert '"n":11' in viewed[0] and "&lt;b&gt;" in viewed[0] and "<b>\"" not in card


async def test_stats_counts_todays_events(harness: BotHarness):
    await harness.feed(message_update(tg_user(27), "hi"), message_update(ADMIN, "/mark 27 a=1"))
    await harness.feed(message_update(ADMIN, "/stats"))
    text = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "marker.changed — " in text
