"""An update's touch events: a pure function of the update."""

from __future__ import annotations

from typing import Any

from aiogram.types import Update

from relove.events import batch_insert
from relove.events.updates import event_rows_of_update, events_of_update, parse_command
from tests.bot.fake_telegram import callback_update, member_update, message_update, tg_user

ANNA = tg_user(5, "Анна")


def _one(raw: dict[str, Any]) -> Any:
    (event,) = events_of_update(Update.model_validate(raw))
    return event


def test_a_text_message_is_message_received_with_its_text_for_the_conversation():
    ev = _one(message_update(ANNA, "привет <b>"))
    assert (ev.user_id, ev.name, ev.source) == (5, "message.received", "bot")
    assert ev.props == {"message_id": ev.message.message_id, "type": "text"}
    assert (ev.message.kind, ev.message.text, ev.message.direction) == ("text", "привет <b>", "in")


def test_a_command_is_command_used_with_its_payload():
    ev = _one(message_update(ANNA, "/start promo_42"))
    assert ev.name == "command.used"
    assert (ev.props["command"], ev.props["payload"]) == ("start", "promo_42")
    assert ev.message.kind == "command" and ev.message.text == "/start promo_42"
    assert _one(message_update(ANNA, "/Help@relove_bot")).props["command"] == "help"
    long = _one(message_update(ANNA, "/feedback " + "x" * 5000))
    assert len(long.props["payload"]) == 1024


def test_parse_command():
    assert parse_command("/start") == ("start", "")
    assert parse_command("/ not a command") is None
    assert parse_command("plain") is None
    assert parse_command("/a-b") is None


def test_a_photo_with_a_caption():
    raw = message_update(ANNA, "x")
    del raw["message"]["text"]
    raw["message"].update(photo=[{"file_id": "f", "file_unique_id": "u", "width": 1,
                                  "height": 1}], caption="моё фото")  # fmt: skip
    ev = _one(raw)
    assert ev.props["type"] == "photo" and ev.message.text == "моё фото"


def test_group_messages_have_no_conversation_and_say_the_chat():
    raw = message_update(ANNA, "hi all")
    raw["message"]["chat"] = {"id": -100, "type": "supergroup", "title": "g"}
    ev = _one(raw)
    assert ev.props["chat"] == "supergroup" and ev.message is None


def test_a_button_press_names_the_button():
    raw = callback_update(ANNA, "sc:city:1")
    raw["callback_query"]["message"]["reply_markup"] = {"inline_keyboard": [[
        {"text": "Москва", "callback_data": "sc:city:1"},
        {"text": "Тверь", "callback_data": "sc:city:2"},
    ]]}  # fmt: skip
    ev = _one(raw)
    assert ev.name == "button.pressed"
    assert ev.props == {"data": "sc:city:1", "text": "Москва", "message_id": 1}
    assert (ev.message.kind, ev.message.text) == ("button", "Москва")


def test_blocking_and_unblocking():
    assert _one(member_update(ANNA, "kicked")).name == "user.blocked"
    assert _one(member_update(ANNA, "member")).name == "user.unblocked"


def test_updates_without_a_human_have_no_events():
    bot_msg = message_update(tg_user(9, "Bot", is_bot=True), "hi")
    assert events_of_update(Update.model_validate(bot_msg)) == []
    assert events_of_update(Update.model_validate({"update_id": 1})) == []


def test_event_rows_encode_exactly_the_events():
    """The touch's rows (built without objects) are what the events encode to."""
    group = message_update(ANNA, "hi all")
    group["message"]["chat"] = {"id": -100, "type": "supergroup", "title": "g"}
    button = callback_update(ANNA, "sc:city:1")
    raws = [message_update(ANNA, "привет"), message_update(ANNA, "/start " + "x" * 2000),
            message_update(ANNA, "y" * 5000), group, button, callback_update(ANNA, "nolabel"),
            member_update(ANNA, "kicked"), member_update(ANNA, "member"),
            message_update(tg_user(9, "Bot", is_bot=True), "hi"), {"update_id": 1}]  # fmt: skip
    for dialect in ("postgresql", "sqlite"):
        insert = batch_insert(dialect)
        for raw in raws:
            update = Update.model_validate(raw)
            assert event_rows_of_update(update) == insert.rows(
                events_of_update(update), source="bot", check=False
            )


def test_the_type_is_aiogram_s_content_type() -> None:
    """The kind is read without aiogram's ``content_type`` where a text says it already; it
    must name what that property names for every message."""
    photo = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    sticker = {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1,
               "height": 1, "is_animated": False, "is_video": False}  # fmt: skip
    raws = [message_update(ANNA, "hi"), message_update(ANNA, "/ not a command"),
            message_update(ANNA, ""), message_update(ANNA, "", photo=photo, caption="c"),
            message_update(ANNA, "", sticker=sticker)]  # fmt: skip
    for raw in raws:
        if raw["message"]["text"] == "" and len(raw["message"]) > 5:
            del raw["message"]["text"]  # a photo or sticker has no text at all
        update = Update.model_validate(raw)
        assert update.message is not None
        expected = update.message.content_type
        assert _one(raw).props["type"] == getattr(expected, "value", expected), raw
