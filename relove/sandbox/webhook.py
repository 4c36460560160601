"""getUpdates and the webhook methods (setWebhook, deleteWebhook, getWebhookInfo)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import aiohttp

from relove.sandbox.core import ApiError, bad_request
from relove.sandbox.updates import ALL_UPDATE_TYPES, Conflict

if TYPE_CHECKING:
    from relove.sandbox.core import Sandbox
    from relove.sandbox.params import Params

_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _allowed(p: Params) -> list[str] | None:
    allowed = p.json("allowed_updates")
    if allowed is None:
        return None
    if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
        raise bad_request("can't parse allowed updates")
    return [a for a in allowed if a in ALL_UPDATE_TYPES]


async def get_updates(sb: Sandbox, p: Params) -> Any:
    limit = p.int("limit", default=100) or 100
    limit = min(max(limit, 1), 100)
    timeout = min(max(p.float("timeout", 0.0), 0.0), 50.0)
    allowed = _allowed(p)
    if sb.updates.webhook is None:
        sb.updates.set_allowed(allowed)
    try:
        return await sb.updates.get(p.int("offset"), limit, timeout)
    except Conflict as e:
        raise ApiError(409, str(e)) from None


async def set_webhook(sb: Sandbox, p: Params) -> Any:
    url = p.str("url") or ""
    if not url:
        return await delete_webhook(sb, p)
    if not re.match(r"^https?://[^\s/]+", url):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.str("secret_token")
    if secret is not None and not _SECRET.match(secret):
        raise bad_request("bad webhook: secret token contains unallowed characters")
    if p.bool("drop_pending_updates"):
        sb.updates.drop_pending()
    sb.updates.set_allowed(_allowed(p))
    info = {"url": url, "secret_token": secret,
            "max_connections": p.int("max_connections", default=40)}
    sb.updates.set_webhook(info, lambda: _deliver(sb))
    return True


async def _deliver(sb: Sandbox) -> None:
    from relove.sandbox.botapi import call_method

    async def on_reply(call: dict[str, Any]) -> None:
        from relove.sandbox.params import Params

        name = str(call.pop("method"))
        await call_method(sb, name, Params(call))

    async with aiohttp.ClientSession() as session:
        await sb.updates.deliver_webhook(session, on_reply)


async def delete_webhook(sb: Sandbox, p: Params) -> Any:
    if p.bool("drop_pending_updates"):
        sb.updates.drop_pending()
    await sb.updates.delete_webhook()
    return True


async def webhook_info(sb: Sandbox, p: Params) -> Any:
    return sb.updates.webhook_info()
