"""End to end: the real bot polls the sandbox over HTTP; simulated users talk to it; the
database (SQLite and PostgreSQL) and the bot's replies are checked."""

from __future__ import annotations

from sqlalchemy import select

from relove.bot.texts import Texts
from relove.db.models import User
from tests.sandbox_fixtures import LiveBot, eventually

TEXTS = Texts.load("ru")


async def _user(live: LiveBot, user_id: int) -> User | None:
    async with live.engine.connect() as conn:
        row = (await conn.execute(select(User.__table__).where(User.id == user_id))).first()
    return row  # type: ignore[return-value]


async def test_start_with_payload_creates_user_with_source(live_bot: LiveBot) -> None:
    anya = await live_bot.new_user("Аня", last_name="Смирнова", username="anya_s",
                                   language_code="ru")
    sent = await live_bot.client.start(anya["id"], "src_instagram")
    reply = await live_bot.client.wait_for_bot_message(anya["id"], after=sent["message_id"])
    assert "Аня" in reply["text"]
    assert reply["parse_mode"] == "HTML"

    async def stored() -> object:
        row = await _user(live_bot, anya["id"])
        return row if row is not None and row.markers.get("source") == "src_instagram" else None

    row = await eventually(stored)
    assert row.first_name == "Аня" and row.username == "anya_s"
    assert row.is_active is True
    assert row.last_seen_at is not None


async def test_forget_confirm_button_reaches_its_handler(live_bot: LiveBot) -> None:
    client = live_bot.client
    boris = await live_bot.new_user("Борис")
    await client.ask(boris["id"], "/start friend")
    await eventually(lambda: _user(live_bot, boris["id"]))

    ask = await client.ask(boris["id"], "/forget")
    assert ask["text"] == TEXTS("forget_ask")
    buttons = [b for row in ask["reply_markup"]["inline_keyboard"] for b in row]
    confirm = next(b for b in buttons if b["text"] == TEXTS("forget_confirm_button"))

    pressed = await client.press(boris["id"], ask["message_id"], data=confirm["callback_data"],
                                 wait=10)
    assert pressed["answered"] is True  # the handler answered the callback query

    def edited(view: dict) -> dict | None:
        m = next(m for m in view["messages"] if m["message_id"] == ask["message_id"])
        return m if m["edited"] else None

    done = await client.wait_for(boris["id"], edited)
    assert done["text"] == TEXTS("forget_done")
    assert done["reply_markup"] is None  # the keyboard went away with the edit
    assert done["edits"][0]["text"] == TEXTS("forget_ask")


async def test_block_marks_user_inactive_and_sends_get_403(live_bot: LiveBot) -> None:
    client = live_bot.client
    vera = await live_bot.new_user("Вера")
    await client.ask(vera["id"], "/start")
    await eventually(lambda: _user(live_bot, vera["id"]))

    await client.block(vera["id"])

    async def inactive() -> bool:
        row = await _user(live_bot, vera["id"])
        return row is not None and row.is_active is False

    await eventually(inactive)

    from aiogram.exceptions import TelegramForbiddenError

    try:
        await live_bot.bot.send_message(vera["id"], "hello?")
    except TelegramForbiddenError as e:
        assert "bot was blocked by the user" in e.message
    else:
        raise AssertionError("a blocked user must not receive messages")

    await client.unblock(vera["id"])

    async def active() -> bool:
        row = await _user(live_bot, vera["id"])
        return row is not None and row.is_active is True

    await eventually(active)


async def test_plain_text_gets_a_reply_read_back_through_control_api(live_bot: LiveBot) -> None:
    client = live_bot.client
    gleb = await live_bot.new_user("Глеб")
    await client.ask(gleb["id"], "/start")
    reply = await client.ask(gleb["id"], "Привет! <b>не тег</b> & всё такое", timeout=15)
    assert reply["from_bot"] is True
    assert reply["text"]
    messages = await client.messages(gleb["id"])
    assert [m["from_bot"] for m in messages[:2]] == [False, True]
    assert messages[2]["text"] == "Привет! <b>не тег</b> & всё такое"
