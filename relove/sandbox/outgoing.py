"""What every method that sends a message shares: the chat check and the delivery.

The official server checks a call in a fixed order — the content (text, parse mode, files
named), then ``reply_parameters``, then ``reply_markup``, then the chat, then the replied-to
message — and the sandbox answers the first failure in that same order (:class:`Outgoing`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from relove.sandbox.core import Sandbox
from relove.sandbox.markup import ReplyTo, apply_keyboard, reply_markup
from relove.sandbox.params import Params
from relove.sandbox.state import Chat, Message


@dataclass(slots=True)
class Outgoing:
    """A message call after its checks: the target chat, the reply and the markup."""

    chat: Chat
    reply_to: int | None
    markup: dict[str, Any] | None
    paid: bool
    protected: bool

    @classmethod
    def check(cls, sb: Sandbox, p: Params) -> Outgoing:
        """Reply parameters, reply markup and the chat, in the official server's order (call it
        after the content's own checks)."""
        reply = ReplyTo.read(p)
        markup = reply_markup(p)
        chat = sb.target_chat(p.chat_id())
        return cls(chat, reply.resolve(chat), markup, p.bool("allow_paid_broadcast"),
                   p.bool("protect_content"))

    def deliver(self, sb: Sandbox, message: Message) -> Message:
        """Take a flood-limit slot (429 when there is none) and store ``message``."""
        sb.take_slot(self.chat, self.paid)
        self.store(message)
        return message

    def store(self, message: Message) -> None:
        chat = self.chat
        message.message_id = chat.new_id()
        message.chat_id = chat.id
        message.reply_to = self.reply_to
        message.paid = self.paid
        message.protected = self.protected
        message.reply_markup = self.markup
        chat.add(message)
        apply_keyboard(chat, self.markup)
        chat.action = None


def new_message(chat: Chat) -> Message:
    """An empty bot message for ``chat`` (its id is given on delivery)."""
    return Message(message_id=0, chat_id=chat.id, sender=None, date=int(time.time()))
