"""Reply markup (inline and reply keyboards) and reply parameters, checked with the official Bot
API server's wording (tdlib/telegram-bot-api ``Client::get_reply_markup`` and friends)."""

from __future__ import annotations

from typing import Any

from relove.sandbox.apierrors import bad_request
from relove.sandbox.links import LinkError, check_link
from relove.sandbox.params import Params, lenient_int
from relove.sandbox.state import Chat

#: the button kinds in the order the official server looks for them (the first one present wins)
INLINE_KINDS = ("url", "callback_data", "callback_game", "pay", "switch_inline_query",
                "switch_inline_query_chosen_chat", "switch_inline_query_current_chat",
                "login_url", "web_app", "copy_text")


def _field_type(name: str, kind: str) -> str:
    return f'Field "{name}" must be of type {kind}'


def _text_field(button: dict[str, Any]) -> str:
    if "text" not in button:
        raise ValueError('Can\'t find field "text"')
    text = button["text"]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return str(text)  # the official server reads a Number as a String
    if not isinstance(text, str):
        raise ValueError(_field_type("text", "String"))
    return text


def reply_markup(p: Params) -> dict[str, Any] | None:
    """The call's ``reply_markup`` (None when absent), or the official error."""
    markup = p.json("reply_markup", "can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("object expected as reply markup")
    if "keyboard" in markup:
        _check_keyboard(markup["keyboard"])
    if "inline_keyboard" in markup:
        _check_inline(markup["inline_keyboard"])
    if markup.get("keyboard"):
        return markup
    if markup.get("inline_keyboard"):
        return markup
    if markup.get("remove_keyboard") or markup.get("hide_keyboard"):
        return markup
    if markup.get("force_reply"):
        return markup
    return None  # nothing the official server would act on


def _check_keyboard(rows: Any) -> None:
    if not isinstance(rows, list):
        raise bad_request('field "keyboard" must be of type Array')
    for row in rows:
        if not isinstance(row, list):
            raise bad_request('field "keyboard" must be an Array of Arrays')
        for button in row:
            try:
                if isinstance(button, dict):
                    text = _text_field(button)
                elif isinstance(button, str):
                    text = button
                else:
                    raise ValueError("KeyboardButton must be a String or an Object")
            except ValueError as e:
                raise bad_request(f"can't parse keyboard button: {e}") from None
            if not text:
                raise bad_request("keyboard button text must be non-empty")


def _check_inline(rows: Any) -> None:
    if not isinstance(rows, list):
        raise bad_request('field "inline_keyboard" must be of type Array')
    for row in rows:
        if not isinstance(row, list):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        for button in row:
            try:
                if not isinstance(button, dict):
                    raise ValueError("InlineKeyboardButton must be an Object")
                text = _text_field(button)
                kind = next((k for k in INLINE_KINDS if button.get(k) not in (None, "")
                             or (k not in ("url", "callback_data") and k in button)), None)
                if kind is None:
                    raise ValueError("Text buttons are unallowed in the inline keyboard")
            except ValueError as e:
                raise bad_request(f"can't parse inline keyboard button: {e}") from None
            if not text:
                raise bad_request("inline keyboard button text must be non-empty")
            if kind == "callback_data":
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
            elif kind == "url":
                try:
                    check_link(str(button["url"]))
                except LinkError as e:
                    raise bad_request(f"inline keyboard button {e}") from None


def apply_keyboard(chat: Chat, markup: dict[str, Any] | None) -> None:
    if not markup:
        return
    if markup.get("keyboard"):
        chat.reply_keyboard = markup
    elif markup.get("remove_keyboard") or markup.get("hide_keyboard"):
        chat.reply_keyboard = None


def inline_only(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """Edits take an inline keyboard only."""
    if markup is not None and not markup.get("inline_keyboard"):
        raise bad_request("inline keyboard expected")
    return markup


class ReplyTo:
    """The message a call replies to, as given (checked against the chat by :meth:`resolve`)."""

    __slots__ = ("message_id", "allow_without")

    def __init__(self, message_id: int, allow_without: bool) -> None:
        self.message_id = message_id
        self.allow_without = allow_without

    @classmethod
    def read(cls, p: Params) -> ReplyTo:
        if "reply_parameters" not in p.values:
            return cls(max(lenient_int(p.values.get("reply_to_message_id")), 0),
                       p.bool("allow_sending_without_reply"))
        value = p.json("reply_parameters", "can't parse reply parameters JSON object")
        if value is None:
            return cls(0, False)
        if not isinstance(value, dict):
            raise bad_request("object expected as reply parameters")
        if not value:
            return cls(0, False)
        if "message_id" not in value:
            raise bad_request('can\'t find field "message_id"')
        raw = value["message_id"]
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise bad_request('field "message_id" must be a Number')
        try:
            mid = int(raw)
        except ValueError:
            raise bad_request('field "message_id" must be a valid Number') from None
        return cls(max(mid, 0), bool(value.get("allow_sending_without_reply")))

    def resolve(self, chat: Chat) -> int | None:
        """The replied-to message id in ``chat``, None for no reply, or the official error."""
        if not self.message_id:
            return None
        message = chat.messages.get(self.message_id)
        if message is None or message.deleted:
            if self.allow_without:
                return None
            raise bad_request("message to be replied not found")
        return self.message_id
