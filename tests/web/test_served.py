"""The console mounted in the API's app (what `relove serve` runs): pages at /, the API under
/api/v1 with its own errors and headers; API tokens created and revoked from Settings."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.admins.login import create_login_token
from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.events.models import Event
from relove.web.app import console_mount
from tests.web.conftest import OWNER_ID, console_settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def test_console_and_api_share_one_app(
        db: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]) -> None:
    settings = console_settings()
    app = create_app(settings, db, session_factory, limiter=MemoryRateLimiter(),
                     mounts=[console_mount(settings, session_factory)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://console.test") as client:
        r = await client.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        api = await client.get("/api/v1/me")
        assert api.status_code == 401
        assert api.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/api/v1/no-such")).headers["content-type"].startswith(
            "application/problem+json")
        async with session_factory.begin() as s:
            login = await create_login_token(s, OWNER_ID)
        assert (await client.post(f"/auth/link/{login}")).status_code == 303
        page = await client.get("/settings")
        assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers[
            "content-security-policy"]
        csrf = CSRF.search(page.text)
        assert csrf is not None
        created = await client.post("/settings/tokens", data={
            "name": "crm", "scopes": ["users:read", "events:read"], "csrf": csrf.group(1)})
        assert created.status_code == 200
        token = re.search(r'<code class="token">(rlv_[^<]+)</code>', created.text)
        assert token is not None  # shown once …
        again = await client.get("/settings")
        assert token.group(1) not in again.text  # … and never again
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"})
        assert me.status_code == 200 and me.json()["scopes"] == ["events:read", "users:read"]
        key_id = me.json()["key_id"]
        r = await client.post("/settings/tokens/revoke",
                              data={"key_id": key_id, "csrf": csrf.group(1)})
        assert r.status_code == 303
    async with session_factory() as s:
        names = (await s.execute(select(Event.name).where(Event.name.like("token.%"))
                                 .order_by(Event.id))).scalars().all()
    assert names == ["token.created", "token.revoked"]
