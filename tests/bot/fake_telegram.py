"""A fake Telegram transport: an aiogram ``BaseSession`` that records every request and answers
with Bot API JSON, parsed by aiogram exactly like a real response."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

BOT_ID = 42


class FakeTelegramSession(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self._ids = itertools.count(1000)
        self.scripted: list[tuple[int, dict[str, Any]]] = []

    async def close(self) -> None:
        pass

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        yield b""

    def answer_next(self, status: int, body: dict[str, Any]) -> None:
        """Script the response to the next request (e.g. a 429 or a 403)."""
        self.scripted.append((status, body))

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        self.requests.append(method)
        if self.scripted:
            status, body = self.scripted.pop(0)
        else:
            status, body = 200, {"ok": True, "result": self._result(method)}
        response = self.check_response(bot, method, status, json.dumps(body))
        return response.result  # type: ignore[return-value]

    def _result(self, method: TelegramMethod[Any]) -> Any:
        name = type(method).__name__
        if name == "GetMe":
            return {"id": BOT_ID, "is_bot": True, "first_name": "relove", "username": "relove_bot"}
        if name in ("SendMessage", "EditMessageText"):
            chat_id = getattr(method, "chat_id", None) or 0
            message = {
                "message_id": getattr(method, "message_id", None) or next(self._ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "relove"},
                "text": method.text,
            }
            if getattr(method, "reply_markup", None) is not None:
                message["reply_markup"] = method.reply_markup.model_dump(exclude_none=True)
            return message
        return True

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        return [
            r.text
            for r in self.requests
            if type(r).__name__ in ("SendMessage", "EditMessageText")
            and (chat_id is None or r.chat_id == chat_id)
        ]


_update_ids = itertools.count(1)


def tg_user(user_id: int, first_name: str = "Анна", **extra: Any) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, **extra}


def message_update(user: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    update_id = next(_update_ids)
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user["id"], "type": "private", "first_name": user.get("first_name")},
        "from": user,
        "text": text,
        **extra,
    }
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


def callback_update(user: dict[str, Any], data: str, message_id: int = 1) -> dict[str, Any]:
    update_id = next(_update_ids)
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(update_id),
            "from": user,
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user["id"], "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "relove"},
                "text": "…",
            },
        },
    }


def member_update(user: dict[str, Any], status: str) -> dict[str, Any]:
    update_id = next(_update_ids)
    old = "member" if status == "kicked" else "kicked"
    bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "relove"}
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": {"id": user["id"], "type": "private"},
            "from": user,
            "date": int(time.time()),
            "old_chat_member": {"status": old, "user": bot_user, **_kicked(old)},
            "new_chat_member": {"status": status, "user": bot_user, **_kicked(status)},
        },
    }


def _kicked(status: str) -> dict[str, Any]:
    return {"until_date": 0} if status == "kicked" else {}
