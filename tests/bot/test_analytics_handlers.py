"""/find, /stats, /breakdown through the real Dispatcher (Telegram faked at the session)."""

from __future__ import annotations

from relove.db.models import User
from tests.bot.conftest import ADMIN_ID, BotHarness
from tests.bot.fake_telegram import message_update, tg_user

ADMIN = tg_user(ADMIN_ID, "Admin")


async def _people(session_factory) -> None:
    async with session_factory.begin() as s:
        s.add_all(
            [
                User(id=1, username="ivan", first_name="<b>Иван</b>",
                     markers={"city": "Москва", "VIP": True, "interests": ["yoga", "art"],
                              "source": "ads"}),
                User(id=2, first_name="Анна", gender="female",
                     markers={"city": "Москва", "interests": ["yoga"], "source": "<i>x</i>"}),
                User(id=3, first_name="Олег", markers={"city": "Тверь"}),
            ]
        )  # fmt: skip


async def test_find_counts_and_lists_escaped_users(harness: BotHarness, session_factory):
    await _people(session_factory)
    await harness.feed(message_update(ADMIN, '/find city = "Москва"'))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "<b>2</b>" in reply
    assert "&lt;b&gt;Иван&lt;/b&gt;" in reply and "@ivan" in reply and "Анна" in reply
    assert "Олег" not in reply


async def test_find_with_a_bad_filter_replies_politely(harness: BotHarness, session_factory):
    await _people(session_factory)
    await harness.feed(message_update(ADMIN, '/find city like "<x>"'))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "unknown operator" in reply and "position 6" in reply
    assert "<x>" not in reply
    await harness.feed(message_update(ADMIN, "/find"))
    assert "/find" in harness.telegram.sent_texts(ADMIN_ID)[-1]


async def test_stats_and_breakdown(harness: BotHarness, session_factory):
    await _people(session_factory)
    await harness.feed(message_update(ADMIN, "/stats"))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "4" in reply  # the admin's own touch made a fourth user
    assert "&lt;i&gt;x&lt;/i&gt;" in reply and "ads" in reply
    await harness.feed(message_update(ADMIN, '/breakdown interests city = "Москва"'))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "interests" in reply and "yoga — 2 (100.0%)" in reply and "art — 1 (50.0%)" in reply
    await harness.feed(message_update(ADMIN, "/breakdown markers"))
    assert "needs a key" in harness.telegram.sent_texts(ADMIN_ID)[-1]


async def test_non_admins_get_nothing_from_analytics(harness: BotHarness, session_factory):
    await _people(session_factory)
    stranger = tg_user(5, "Stranger")
    await harness.feed(message_update(stranger, "/find is_active"))
    assert all("Подходит" not in t for t in harness.telegram.sent_texts(5))


async def test_find_answers_every_refused_filter_instead_of_going_silent(
    harness: BotHarness, session_factory
):
    """Filters that parsed but crashed (an overflowing date or number, a lone surrogate, a
    NUL, a regex bomb on SQLite) get the filter error as a reply, never silence."""
    await _people(session_factory)
    async with session_factory.begin() as s:
        s.add(User(id=9, username="a" * 63 + "!"))
    for flt, fragment in [
        ("created_at > 9999-12-31", "out of range"),
        ("score > 99999999999999999999", "signed 64-bit"),
        ('city = "\\ud800"', "lone surrogate"),
        ('city = "\\u0000"', "NUL"),
        ("city in (" + ", ".join(str(i) for i in range(1001)) + ")", "at most 1000 values"),
    ]:
        before = len(harness.telegram.sent_texts(ADMIN_ID))
        await harness.feed(message_update(ADMIN, f"/find {flt}"))
        replies = harness.telegram.sent_texts(ADMIN_ID)[before:]
        assert len(replies) == 1 and fragment in replies[0], (flt, replies)
    await harness.feed(message_update(ADMIN, '/find username ~ "(a|aa)+$"'))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    pg = session_factory.kw["bind"].dialect.name == "postgresql"
    assert ("<b>0</b>" in reply) if pg else ("takes too long" in reply), reply


async def test_admin_commands_refuse_ids_outside_64_bits_politely(
    harness: BotHarness, session_factory
):
    for command in (f"/user {2**63}", f"/mark {2**64} city=x"):
        before = len(harness.telegram.sent_texts(ADMIN_ID))
        await harness.feed(message_update(ADMIN, command))
        assert len(harness.telegram.sent_texts(ADMIN_ID)[before:]) == 1


async def test_find_takes_behavioural_conditions(harness: BotHarness, session_factory):
    from relove.events.record import record

    await _people(session_factory)
    async with session_factory.begin() as s:
        await record(s, 3, "link.clicked", {"link": "sale"}, source="bot")
    flt = 'did "link.clicked" where link = "sale" within 7d'
    await harness.feed(message_update(ADMIN, f"/find {flt}"))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "<b>1</b>" in reply and "Олег" in reply and "Анна" not in reply
