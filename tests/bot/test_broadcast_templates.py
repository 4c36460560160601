"""/broadcast with a template bomb in the replied-to message: a polite one-line refusal."""

from __future__ import annotations

from tests.bot.conftest import ADMIN_ID, BotHarness
from tests.bot.fake_telegram import message_update, tg_user


async def test_the_bots_broadcast_refuses_a_bomb_politely(harness: BotHarness, session_factory):
    admin = tg_user(ADMIN_ID, "Admin")
    await harness.feed(message_update(admin, "/start"))
    source = message_update(admin, "{{ 'a' * 10**9 }}")["message"]
    await harness.feed(message_update(admin, "/broadcast is_active", reply_to_message=source))
    reply = harness.telegram.sent_texts(ADMIN_ID)[-1]
    assert "longer than 65,536 characters" in reply
