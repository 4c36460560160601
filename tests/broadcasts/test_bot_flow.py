"""The admin flow end to end: the real bot polling the sandbox, its runner sending."""

from __future__ import annotations

from relove.bot.texts import Texts
from tests.broadcasts.conftest import seed_users
from tests.sandbox_fixtures import LIVE_ADMIN_ID, LiveBot

TEXTS = Texts.load("ru")


async def _reply(live: LiveBot, uid: int, text: str, reply_to: int) -> dict:
    body = {"text": text, "reply_to": reply_to}
    return (await live.client.call("POST", f"users/{uid}/messages", json=body))["message"]


async def test_admin_broadcasts_by_replying(live_bot: LiveBot) -> None:
    client = live_bot.client
    await client.create_user("Админ", id=LIVE_ADMIN_ID)
    await client.ask(LIVE_ADMIN_ID, "/start")
    ids = await seed_users(live_bot.engine, client, 5)
    source = await client.send(LIVE_ADMIN_ID, "Встреча в субботу, {{ user.first_name }}!")

    asked = await _reply(
        live_bot, LIVE_ADMIN_ID, "/broadcast city = 'Москва'", source["message_id"]
    )

    def confirm_message(m: dict) -> bool:
        return bool(m["reply_markup"]) and "Получателей" in (m["text"] or "")

    confirm = await client.wait_for_bot_message(
        LIVE_ADMIN_ID, after=asked["message_id"], where=confirm_message)
    assert "5" in confirm["text"]
    # the preview, rendered for the admin
    await client.wait_for_bot_message(
        LIVE_ADMIN_ID, after=asked["message_id"],
        where=lambda m: m["text"] == "Встреча в субботу, Админ!")

    go = confirm["reply_markup"]["inline_keyboard"][0][0]
    assert go["text"] == TEXTS("broadcast_confirm_button")
    await client.press(LIVE_ADMIN_ID, confirm["message_id"], data=go["callback_data"], wait=10)

    def final(view: dict) -> dict | None:
        m = next(m for m in view["messages"] if m["message_id"] == confirm["message_id"])
        finished = m["edited"] and "Отправлено: 5 из 5" in m["text"] and "finished" in m["text"]
        return m if finished else None

    done = await client.wait_for(LIVE_ADMIN_ID, final, timeout=30)
    assert done["reply_markup"] is None
    for uid in ids:
        [got] = await client.messages(uid, from_bot=True)
        assert got["text"] == f"Встреча в субботу, User{uid}!"


async def test_bad_filter_gets_a_polite_reply(live_bot: LiveBot) -> None:
    client = live_bot.client
    await client.create_user("Админ", id=LIVE_ADMIN_ID)
    source = await client.send(LIVE_ADMIN_ID, "Текст")
    asked = await _reply(live_bot, LIVE_ADMIN_ID, "/broadcast city = = 1", source["message_id"])
    await client.wait_for_bot_message(
        LIVE_ADMIN_ID, after=asked["message_id"],
        where=lambda m: m["text"].startswith("Фильтр не разобран"))


async def test_non_admin_cannot_broadcast(live_bot: LiveBot) -> None:
    client = live_bot.client
    eve = await live_bot.new_user("Ева")
    source = await client.send(eve["id"], "Текст")
    asked = await _reply(live_bot, eve["id"], "/broadcast is_active", source["message_id"])
    reply = await client.wait_for_bot_message(eve["id"], after=asked["message_id"])
    assert "Получателей" not in reply["text"]
    assert not any("Получателей" in (m["text"] or "")
                   for m in await client.messages(eve["id"], from_bot=True))
