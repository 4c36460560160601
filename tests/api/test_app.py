"""The app's frame: auth (401/403), problem+json, body limits, headers, the docs page."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from relove.api.models import ApiToken
from relove.api.vendor import MANIFEST, VENDOR_DIR, sha256_of
from tests.api.conftest import TokenFactory

PROBLEM = "application/problem+json"


async def test_me_with_a_token(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    token = await make_token("users:read", name="crm")
    r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json()["name"] == "crm"
    assert r.json()["scopes"] == ["users:read"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


async def test_missing_and_bad_tokens_are_401_problems(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    good = await make_token("users:read")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": f"Basic {good}"},
                    {"Authorization": f"Bearer {forged}"}):  # fmt: skip
        r = await client.get("/api/v1/me", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == PROBLEM
        assert r.headers["www-authenticate"].startswith("Bearer")
        body = r.json()
        assert body["status"] == 401 and body["code"] == "unauthorized" and body["detail"]


async def test_revoked_token_is_refused(
    client: httpx.AsyncClient, make_token: TokenFactory, session_factory
) -> None:
    from relove.api.tokens import revoke_token

    token = await make_token("users:read", name="old")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    async with session_factory.begin() as session:
        await revoke_token(session, "old")
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_last_used_is_recorded(
    client: httpx.AsyncClient, make_token: TokenFactory, session_factory
) -> None:
    token = await make_token("users:read", name="seen")
    async with session_factory() as session:
        assert await session.scalar(select(ApiToken.last_used_at)) is None
    await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    async with session_factory() as session:
        assert await session.scalar(select(ApiToken.last_used_at)) is not None


async def test_unknown_api_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing/here")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "not_found"


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    assert r.json()["openapi"].startswith("3.1")


async def test_docs_page_works_offline(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/docs")
    assert r.status_code == 200
    assert "https://" not in r.text and "http://" not in r.text  # nothing from elsewhere
    csp = r.headers["content-security-policy"]
    script_src = csp.split("script-src")[1].split(";")[0]
    assert "'self'" in script_src and "unsafe-inline" not in script_src
    for src in ("swagger-ui-bundle", "swagger-ui-", "docs.js"):
        assert src in r.text
    import re

    for path in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        asset = await client.get(path)
        assert asset.status_code == 200, path
        assert len(asset.content) > 100


def test_vendored_assets_match_their_manifest() -> None:
    import json

    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert entries
    for entry in entries:
        assert entry["version"] in entry["file"]
        assert sha256_of(VENDOR_DIR / entry["file"]) == entry["sha256"]
