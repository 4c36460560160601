"""Webhooks page (owners only): endpoints with their failure state, add (the secret shown once,
never listed), enable/disable, rotate (shown once), test ping, the delivery log and replay —
the same rows the CLI and the API see. Hostile URLs and descriptions render as text."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select, update

from relove.events import record
from relove.events.models import Event
from relove.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.web.conftest import (
    OPERATOR_ID,
    OWNER_ID,
    VIEWER_ID,
    Browser,
    ConsoleHarness,
    MakeConsole,
)

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_URL = "http://127.0.0.1:9/<script>alert(1)</script>"
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture
async def hooks(make_console: MakeConsole) -> ConsoleHarness:
    # receivers in tests are local: private addresses allowed, as RELOVE_WEBHOOKS_ALLOW_PRIVATE
    return await make_console(webhooks_allow_private=True)


def assert_text_only(body: str, value: str) -> None:
    assert value not in body
    assert html.escape(value, quote=False) in body or html.escape(value) in body


async def _endpoints(h: ConsoleHarness) -> list[WebhookEndpoint]:
    async with h.sessions() as s:
        return list((await s.execute(select(WebhookEndpoint))).scalars())


async def _add(owner: Browser, url: str = "http://127.0.0.1:9/hook",
               description: str = HOSTILE, **extra: str) -> tuple[int, str, str]:
    r = await owner.post_form("/webhooks", {"url": url, "events": "user.*, marker.changed",
                                            "description": description, **extra}, htmx=False)
    assert r.status_code == 200, r.text
    secrets = _SECRET.findall(r.text)
    assert len(secrets) == 1, "the secret is shown on the result page"
    match = re.search(r'action="/webhooks/(\d+)/test"', r.text)
    assert match is not None
    return int(match.group(1)), secrets[0], r.text


async def test_owner_only_and_csrf(hooks: ConsoleHarness) -> None:
    anonymous = hooks.client()
    r = await anonymous.get("/webhooks")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    operator = await hooks.login(OPERATOR_ID)
    viewer = await hooks.login(VIEWER_ID)
    owner = await hooks.login(OWNER_ID)
    for who in (operator, viewer):
        assert (await who.get("/webhooks")).status_code == 403
        assert 'href="/webhooks"' not in (await who.get("/")).text
        r = await who.post_form("/webhooks", {"url": "http://127.0.0.1:9/", "events": "*"})
        assert r.status_code == 403
    assert 'href="/webhooks"' in (await owner.get("/")).text
    # the owner without the CSRF token: refused, nothing added
    r = await owner.post_form("/webhooks", {"url": "http://127.0.0.1:9/", "events": "*"},
                              csrf=False)
    assert r.status_code == 403
    assert await _endpoints(hooks) == []
    endpoint_id, _, _ = await _add(owner)
    for action in ("disable", "enable", "test", "rotate"):
        r = await owner.post_form(f"/webhooks/{endpoint_id}/{action}", csrf=False)
        assert r.status_code == 403, action
        r = await operator.post_form(f"/webhooks/{endpoint_id}/{action}")
        assert r.status_code == 403, action
    [endpoint] = await _endpoints(hooks)
    assert endpoint.enabled


async def test_add_shows_the_secret_once_and_hostile_values_as_text(
        hooks: ConsoleHarness) -> None:
    owner = await hooks.login(OWNER_ID)
    endpoint_id, secret, result = await _add(owner, url=HOSTILE_URL,
                                             filter="first_name = 'x'")
    assert_text_only(result, HOSTILE)
    [endpoint] = await _endpoints(hooks)
    assert endpoint.secret == secret and endpoint.url == HOSTILE_URL
    assert endpoint.description == HOSTILE and endpoint.filter == "first_name = 'x'"
    listing = await owner.get("/webhooks")
    assert listing.status_code == 200
    assert secret not in listing.text and "whsec_" not in listing.text
    assert_text_only(listing.text, HOSTILE)
    assert "<script>alert(1)</script>" not in listing.text
    assert f'href="/webhooks/{endpoint_id}"' in listing.text
    detail = await owner.get(f"/webhooks/{endpoint_id}")
    assert secret not in detail.text and "whsec_" not in detail.text
    async with hooks.sessions() as s:
        event = (await s.execute(select(Event).where(Event.name == "webhook.added"))).scalar_one()
    assert event.actor == f"admin:{OWNER_ID}" and event.source == "console"
    assert event.props["endpoint_id"] == endpoint_id and "secret" not in event.props
    assert secret not in str(event.props)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("url", "ftp://example.org/", "http"),
    ("events", "NOT A PATTERN", "pattern"),
    ("filter", "city ===", ""),
])
async def test_bad_input_is_one_line_and_adds_nothing(
        hooks: ConsoleHarness, field: str, value: str, says: str) -> None:
    owner = await hooks.login(OWNER_ID)
    data = {"url": "http://127.0.0.1:9/hook", "events": "user.*", "filter": "", field: value}
    r = await owner.post_form("/webhooks", data, htmx=False)
    assert r.status_code == 422
    error = re.search(r'<p class="flash error" role="alert">([^<]*)</p>', r.text)
    assert error is not None and says in error.group(1) and "\n" not in error.group(1)
    assert "whsec_" not in r.text
    assert await _endpoints(hooks) == []


async def test_actions_and_delivery_log(hooks: ConsoleHarness) -> None:
    owner = await hooks.login(OWNER_ID)
    endpoint_id, secret, _ = await _add(owner)
    base = f"/webhooks/{endpoint_id}"

    r = await owner.post_form(f"{base}/disable", htmx=False)
    assert r.status_code == 303
    page = await owner.get(r.headers["location"])
    assert f'action="{base}/enable"' in page.text
    assert not (await _endpoints(hooks))[0].enabled
    r = await owner.post_form(f"{base}/enable")
    assert r.status_code == 204 and r.headers["HX-Redirect"].startswith(base)
    assert (await _endpoints(hooks))[0].enabled

    # rotate: the new secret once on the result page, the old one still signs for a while
    r = await owner.post_form(f"{base}/rotate", htmx=False)
    assert r.status_code == 200
    [new] = _SECRET.findall(r.text)
    [endpoint] = await _endpoints(hooks)
    assert new != secret and endpoint.secret == new and endpoint.previous_secret == secret
    assert "whsec_" not in (await owner.get(base)).text

    # test ping and replay of one event: both queued in the log
    assert (await owner.post_form(f"{base}/test")).status_code == 204
    async with hooks.sessions.begin() as s:
        await record(s, None, "user.created", {"via": HOSTILE}, source="bot")
        await record(s, None, "broadcast.started", {}, source="system")
    async with hooks.sessions() as s:
        ids = {e.name: e.id for e in (await s.execute(select(Event))).scalars()}
    assert (await owner.post_form(f"{base}/replay",
                                  {"event_id": str(ids["user.created"])})).status_code == 204
    log = (await owner.get(base)).text
    assert "webhook.test" in log and f"evt_{ids['user.created']}" in log
    # an event the endpoint does not subscribe to, and no number: one line, nothing queued
    r = await owner.post_form(f"{base}/replay", {"event_id": str(ids["broadcast.started"])})
    assert r.status_code == 422 and "does not subscribe" in r.text
    r = await owner.post_form(f"{base}/replay", {"event_id": HOSTILE})
    assert r.status_code == 422
    assert_text_only(r.text, HOSTILE)
    async with hooks.sessions() as s:
        rows = list((await s.execute(select(WebhookDelivery))).scalars())
    assert sorted(d.event_name for d in rows) == ["user.created", "webhook.test"]

    # one delivery gave up (as the worker records it): listed as failed with its last answer
    async with hooks.sessions.begin() as s:
        await s.execute(update(WebhookDelivery).where(WebhookDelivery.event_id.is_not(None))
                        .values(status="failed", attempts=8, last_status=500,
                                last_error=HOSTILE))
    listing = (await owner.get("/webhooks")).text
    assert re.search(rf'data-endpoint="{endpoint_id}">.*?<td class="num">1</td>', listing,
                     re.S)
    failed = (await owner.get(f"{base}?failed=true")).text
    assert failed.count("data-delivery=") == 1 and "<code>500</code>" in failed
    assert_text_only(failed, HOSTILE)
    assert "webhook.test" not in failed
    # replay the failed one from its row: pending again, same webhook-id
    r = await owner.post_form(f"{base}/replay", {"event_id": str(ids["user.created"])})
    assert r.status_code == 204
    async with hooks.sessions() as s:
        again = (await s.execute(select(WebhookDelivery).where(
            WebhookDelivery.event_id == ids["user.created"]))).scalar_one()
        names = [e.name for e in (await s.execute(
            select(Event).where(Event.actor == f"admin:{OWNER_ID}").order_by(Event.id)
        )).scalars()]
    assert again.status == "pending" and again.msg_id == f"evt_{ids['user.created']}"
    assert names == ["admin.logged_in", "webhook.added", "webhook.disabled", "webhook.enabled",
                     "webhook.secret_rotated", "webhook.tested", "webhook.replayed",
                     "webhook.replayed"]


async def test_unknown_endpoint_is_404(hooks: ConsoleHarness) -> None:
    owner = await hooks.login(OWNER_ID)
    assert (await owner.get("/webhooks/999")).status_code == 404
    assert (await owner.post_form("/webhooks/999/test")).status_code == 404
