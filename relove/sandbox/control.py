"""The control API (JSON under ``/api``): simulated users act, tests read what the bot sent.

Documented in docs/sandbox.md; :class:`relove.sandbox.client.SandboxClient` is
its Python client.

Closed to other web sites: requests from another site's page are refused before they get here
(:mod:`relove.sandbox.access`: ``Host``, ``Origin``, ``Sec-Fetch-Site``), and a state-changing
request must also say ``Content-Type: application/json`` (415 otherwise) — a cross-site page can
only send that after a CORS preflight, which this server never approves. The web chat (same
origin, JSON) and non-browser clients are unaffected.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from relove.sandbox.core import ActionError, Sandbox
from relove.sandbox.media import file_response
from relove.sandbox.state import Chat

MAX_WAIT = 60.0


def _ok(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(payload, ensure_ascii=False).encode(), status=status,
                        content_type="application/json")


def _fail(message: str, status: int = 400) -> web.Response:
    return _ok({"error": message}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ActionError("request body must be JSON", 400) from None
    if not isinstance(body, dict):
        raise ActionError("request body must be a JSON object", 400)
    return body


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ActionError(f"{name} must be an integer", 400) from None


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse state-changing requests that are not JSON (415): the "simple" requests any web
    page can send without a preflight (cross-site origins are refused earlier, in ``access``)."""
    if request.method not in _SAFE_METHODS and request.content_type != "application/json":
        raise ActionError("Content-Type must be application/json", 415)
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ActionError as e:
        return _fail(str(e), e.status)
    except (ValueError, KeyError) as e:
        return _fail(str(e).strip("'\""), 400)


class Control:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    # --- bot, limits, counters ------------------------------------------------------------
    async def bot(self, request: web.Request) -> web.Response:
        sb = self.sb
        return _ok({
            "bot": sb.world.bot_user,
            "webhook": sb.updates.webhook_info(),
            "commands": sb.world.commands.get("default:", []),
            "limits": sb.config.limits.to_dict(),
            "users": len(sb.world.users),
            "can_read_all_group_messages": sb.world.can_read_all_group_messages,
            "inline_mode": sb.world.inline_mode,
        })

    async def set_bot(self, request: web.Request) -> web.Response:
        """The bot's BotFather switches: ``can_read_all_group_messages`` (privacy mode off)
        and ``inline_mode``."""
        body = await _body(request)
        world = self.sb.world
        for key in body:
            if key not in ("can_read_all_group_messages", "inline_mode"):
                raise ActionError(f"unknown bot setting {key!r}", 400)
            if not isinstance(body[key], bool):
                raise ActionError(f"{key} must be true or false", 400)
            setattr(world, key, body[key])
        return await self.bot(request)

    async def get_limits(self, request: web.Request) -> web.Response:
        return _ok(self.sb.config.limits.to_dict())

    async def set_limits(self, request: web.Request) -> web.Response:
        self.sb.config.limits.update(await _body(request))
        self.sb.limiter.reconfigure()
        return _ok(self.sb.config.limits.to_dict())

    async def stats(self, request: web.Request) -> web.Response:
        return _ok(self.sb.stats.to_dict())

    async def reset_stats(self, request: web.Request) -> web.Response:
        sb = self.sb
        from relove.sandbox.limits import Limiter, Stats

        sb.stats = Stats()
        sb.limiter = Limiter(sb.config.limits, sb.stats)
        return _ok(sb.stats.to_dict())

    async def reset(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.sb.reset(keep_users=bool(body.get("keep_users")))
        return _ok({"reset": True, "users": len(self.sb.world.users)})

    # --- users ----------------------------------------------------------------------------
    async def list_users(self, request: web.Request) -> web.Response:
        world = self.sb.world
        users = []
        for user in world.users.values():
            item = user.to_dict()
            chat = world.chats[user.id]
            item["version"] = chat.version
            last = next((m for m in reversed(chat.messages.values()) if not m.deleted), None)
            item["last_message"] = (last.text or last.caption or "") if last else None
            item["last_date"] = last.date if last else None
            users.append(item)
        return _ok({"users": users, "version": world.users_version})

    async def create_users(self, request: web.Request) -> web.Response:
        body = await _body(request)
        world = self.sb.world
        if "users" in body:
            items = body["users"]
            if not isinstance(items, list):
                raise ActionError("users must be a list", 400)
            created = [world.add_user(**dict(item)) for item in items]
            return _ok({"users": [u.to_dict() for u in created]}, 201)
        return _ok(world.add_user(**body).to_dict(), 201)

    def _user_id(self, request: web.Request) -> int:
        uid = _int(request.match_info["user_id"], "user id")
        if uid not in self.sb.world.users:
            raise ActionError(f"no simulated user {uid}", 404)
        return uid

    async def get_user(self, request: web.Request) -> web.Response:
        return _ok(self.sb.world.users[self._user_id(request)].to_dict())

    async def send(self, request: web.Request) -> web.Response:
        uid = self._user_id(request)
        body = await _body(request)
        chat_id = body.get("chat_id")
        reply_to = body.get("reply_to")
        message = self.sb.user_send(
            uid, str(body.get("text", "")),
            chat_id=None if chat_id is None else _int(chat_id, "chat_id"),
            reply_to=None if reply_to is None else _int(reply_to, "reply_to"))
        return _ok({"message": message.to_dict()}, 201)

    async def press(self, request: web.Request) -> web.Response:
        uid = self._user_id(request)
        body = await _body(request)
        query = self.sb.user_press_button(
            uid, _int(body.get("message_id"), "message_id"),
            data=body.get("data"), text=body.get("text"),
            chat_id=None if body.get("chat_id") is None else _int(body["chat_id"], "chat_id"))
        wait = min(float(body.get("wait", 0) or 0), MAX_WAIT)
        chat = self.sb.world.chats[query.chat_id]
        deadline = time.monotonic() + wait
        while not query.answered and time.monotonic() < deadline:
            await chat.wait_change(chat.version, deadline - time.monotonic())
        return _ok({"callback_query_id": query.id, "data": query.data,
                    "answered": query.answered, "answer": query.answer}, 201)

    async def inline_query(self, request: web.Request) -> web.Response:
        """The user types ``@bot <query>``; with ``wait``, wait for answerInlineQuery."""
        uid = self._user_id(request)
        body = await _body(request)
        query = body.get("query", "")
        if not isinstance(query, str):
            raise ActionError("query must be a string", 400)
        inline = self.sb.user_inline_query(uid, query, offset=str(body.get("offset") or ""))
        wait = min(float(body.get("wait", 0) or 0), MAX_WAIT)
        chat = self.sb.world.chats[uid]
        deadline = time.monotonic() + wait
        while not inline.answered and time.monotonic() < deadline:
            await chat.wait_change(chat.version, deadline - time.monotonic())
        return _ok({"inline_query_id": inline.id, "answered": inline.answered,
                    "answer": inline.answer}, 201)

    async def choose_inline(self, request: web.Request) -> web.Response:
        uid = self._user_id(request)
        body = await _body(request)
        message = self.sb.user_choose_inline_result(
            uid, str(body.get("inline_query_id", "")), str(body.get("result_id", "")))
        return _ok({"message": message.to_dict()}, 201)

    async def press_keyboard(self, request: web.Request) -> web.Response:
        uid = self._user_id(request)
        body = await _body(request)
        message = self.sb.user_press_reply_button(uid, str(body.get("text", "")))
        return _ok({"message": message.to_dict()}, 201)

    async def block(self, request: web.Request) -> web.Response:
        return _ok(self.sb.set_blocked(self._user_id(request), True).to_dict())

    async def unblock(self, request: web.Request) -> web.Response:
        return _ok(self.sb.set_blocked(self._user_id(request), False).to_dict())

    async def deactivate(self, request: web.Request) -> web.Response:
        return _ok(self.sb.deactivate(self._user_id(request)).to_dict())

    # --- chats ----------------------------------------------------------------------------
    async def create_group(self, request: web.Request) -> web.Response:
        body = await _body(request)
        members = [_int(m, "member") for m in body.get("members", [])]
        try:
            chat = self.sb.world.add_group(str(body.get("title") or "Group"), members,
                                           bot_admin=body.get("bot_admin") is True)
        except KeyError as e:
            raise ActionError(f"no simulated user {e.args[0]}", 404) from None
        return _ok(chat.summary(), 201)

    async def messages(self, request: web.Request) -> web.Response:
        """Messages of a chat; ``since=<version>&wait=<s>`` long-polls for a change, ``after``
        returns only newer messages, ``from_bot=1`` only the bot's."""
        key = request.match_info.get("chat_id") or request.match_info["user_id"]
        chat_id = _int(key, "chat id")
        chat = self.sb.world.chats.get(chat_id)
        if chat is None:
            raise ActionError(f"no chat {chat_id}", 404)
        q = request.query
        if "since" in q:
            wait = min(float(q.get("wait", "0") or 0), MAX_WAIT)
            await chat.wait_change(_int(q["since"], "since"), wait)
            chat = self.sb.world.chats.get(chat_id, chat)
        return _ok(self._chat_view(chat, q))

    def _chat_view(self, chat: Chat, q: Any) -> dict[str, Any]:
        after = _int(q.get("after", 0), "after")
        from_bot = q.get("from_bot") in ("1", "true")
        items = [m.to_dict() for mid, m in chat.messages.items()
                 if mid > after and (not from_bot or m.from_bot)]
        answers = [
            {"id": c.id, "message_id": c.message_id, "data": c.data, "answered": c.answered,
             "answer": c.answer}
            for c in list(self.sb.callbacks.values())[-50:] if c.chat_id == chat.id
        ][-10:]
        view = chat.summary()
        if chat.id in self.sb.world.users:
            view["user"] = self.sb.world.users[chat.id].to_dict()
        return {"chat": view, "messages": items, "callback_answers": answers}

    async def file(self, request: web.Request) -> web.StreamResponse:
        record = self.sb.world.files.get(request.match_info["file_id"])
        if record is None or record["data"] is None:
            raise ActionError("no such file", 404)
        return file_response(record)


def add_routes(app: web.Application, sb: Sandbox) -> None:
    c = Control(sb)
    sub = web.Application(middlewares=[_errors, _guard])
    r = sub.router
    r.add_get("/bot", c.bot)
    r.add_route("PATCH", "/bot", c.set_bot)
    r.add_get("/limits", c.get_limits)
    r.add_route("PATCH", "/limits", c.set_limits)
    r.add_post("/limits", c.set_limits)
    r.add_get("/stats", c.stats)
    r.add_post("/stats/reset", c.reset_stats)
    r.add_post("/reset", c.reset)
    r.add_get("/users", c.list_users)
    r.add_post("/users", c.create_users)
    r.add_get("/users/{user_id}", c.get_user)
    r.add_get("/users/{user_id}/messages", c.messages)
    r.add_post("/users/{user_id}/messages", c.send)
    r.add_post("/users/{user_id}/buttons", c.press)
    r.add_post("/users/{user_id}/keyboard", c.press_keyboard)
    r.add_post("/users/{user_id}/inline", c.inline_query)
    r.add_post("/users/{user_id}/inline/choose", c.choose_inline)
    r.add_post("/users/{user_id}/block", c.block)
    r.add_post("/users/{user_id}/unblock", c.unblock)
    r.add_post("/users/{user_id}/deactivate", c.deactivate)
    r.add_post("/groups", c.create_group)
    r.add_get("/chats/{chat_id}/messages", c.messages)
    r.add_get("/files/{file_id}", c.file)
    app.add_subapp("/api/", sub)

