"""Webhooks end to end against a local HTTP sink, on SQLite and PostgreSQL: what a receiver
gets, verified with the ``standardwebhooks`` package as a receiver would."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relove.db.models import User
from relove.errors import InvalidInput
from relove.events import record
from relove.ops.endpoints import Endpoints
from relove.webhooks import service
from relove.webhooks.models import WebhookDelivery, WebhookEndpoint
from relove.webhooks.netguard import AddressRefused
from tests.ops.scrape import sample, scrape
from tests.webhooks.conftest import Clock, unit, wait_for, wh_settings


async def add(session_factory, url: str, events: str = "*", **kw):
    async with unit(session_factory) as session:
        created = await service.add_endpoint(session, url, events, allow_private=True, **kw)
        return created.endpoint.id, created.secret


async def track(session_factory, user_id: int | None, name: str, props=None) -> None:
    async with unit(session_factory) as session:
        await record(session, user_id, name, props or {}, source="api", actor="test")


async def test_signed_payload_verifies_and_carries_the_event(session_factory, sink,
                                                             start_worker):
    async with unit(session_factory) as session:
        session.add(User(id=42, first_name="Анна", username="anna"))
    ep, secret = await add(session_factory, sink.url("/crm"), "marker.*,user.created")
    await start_worker()
    await track(session_factory, 42, "marker.changed", {"key": "city", "old": None,
                                                         "new": "Москва"})
    await track(session_factory, 42, "order.paid", {"sum": 1})  # not subscribed
    await wait_for(lambda: sink.on("/crm"))
    got = sink.on("/crm")[0]
    payload = Webhook(secret).verify(got.body, got.headers)  # raises if forged
    assert payload["type"] == "marker.changed"
    data = payload["data"]
    assert data["user"] == {"id": 42, "username": "anna", "first_name": "Анна",
                            "last_name": None}
    assert data["props"]["new"] == "Москва"
    assert got.headers["webhook-id"] == f"evt_{data['event_id']}"
    assert data["occurred_at"] and data["sequence"] == data["event_id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got.body.replace("Москва", "Тверь"), got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(got.body, got.headers)
    await wait_for(lambda: _statuses(session_factory, ep, ["delivered"]))
    assert len(sink.received) == 1  # order.paid was not sent


async def test_rolled_back_event_is_never_delivered(session_factory, sink, start_worker):
    _, _ = await add(session_factory, sink.url("/all"))
    await start_worker()
    session = session_factory()
    async with session.begin():
        await record(session, 1, "order.paid", {"n": "rolled back"}, source="api")
        await session.rollback()
    await session.close()
    await track(session_factory, 1, "order.paid", {"n": "committed"})
    await wait_for(lambda: sink.on("/all"))
    await track(session_factory, 1, "order.paid", {"n": "after"})
    await wait_for(lambda: len(sink.on("/all")) >= 2)
    sent = [json.loads(r.body)["data"]["props"]["n"] for r in sink.on("/all")]
    assert sent == ["committed", "after"]


async def test_retries_after_500_then_delivered_on_the_fourth(session_factory, sink,
                                                              start_worker):
    ep, secret = await add(session_factory, sink.url("/flaky"))
    sink.plans["/flaky"] = [500, 500, 500, 200]
    before = await scrape(Endpoints())
    clock = Clock()
    await start_worker(clock=clock)
    await track(session_factory, 7, "order.paid")
    for n in (1, 2, 3):
        await wait_for(lambda n=n: len(sink.on("/flaky")) >= n)
        async with session_factory() as session:
            await wait_for(lambda n=n: _attempts(session_factory, ep, n))
        clock.advance(hours=11)  # past any step of the schedule (jitter included)
    await wait_for(lambda: len(sink.on("/flaky")) >= 4)
    got = sink.on("/flaky")
    assert len({r.headers["webhook-id"] for r in got}) == 1  # the same message each time
    Webhook(secret).verify(got[-1].body, got[-1].headers)

    async def delivered() -> bool:
        async with session_factory() as session:
            d = (await service.list_deliveries(session, ep))[0]
            return d.status == "delivered" and d.attempts == 4

    await wait_for(delivered)
    async with session_factory() as session:
        d = (await service.list_deliveries(session, ep))[0]
        log = await service.list_attempts(session, d.id)
    assert [a.status_code for a in log] == [500, 500, 500, 200]
    assert log[0].response_body == "sink says 500"

    async def counted() -> bool:  # /metrics: three retries, then one delivered
        now = await scrape(Endpoints())
        moved = {outcome: sample(now, "relove_webhook_attempts_total", outcome=outcome)
                 - sample(before, "relove_webhook_attempts_total", outcome=outcome)
                 for outcome in ("retry", "delivered", "failed")}  # fmt: skip
        return moved == {"retry": 3, "delivered": 1, "failed": 0}

    await wait_for(counted)


async def _statuses(session_factory, endpoint_id: int, expected: list[str]) -> bool:
    async with session_factory() as session:
        ds = await service.list_deliveries(session, endpoint_id)
        return [d.status for d in ds] == expected


async def _attempts(session_factory, endpoint_id: int, n: int) -> bool:
    async with session_factory() as session:
        ds = await service.list_deliveries(session, endpoint_id)
        return bool(ds) and ds[0].attempts >= n and ds[0].status == "pending"


async def test_410_disables_and_long_failure_disables(session_factory, sink, start_worker):
    told: list[tuple[int, str]] = []

    async def on_disabled(endpoint_id: int, url: str, reason: str) -> None:
        told.append((endpoint_id, reason))

    gone, _ = await add(session_factory, sink.url("/gone"))
    dead, _ = await add(session_factory, sink.url("/dead"))
    sink.plans["/gone"] = [410]
    sink.plans["/dead"] = [500]
    clock = Clock()
    await start_worker(clock=clock, on_disabled=on_disabled)
    await track(session_factory, 1, "order.paid")
    await wait_for(lambda: any(e == gone for e, _ in told))
    await wait_for(lambda: _attempts(session_factory, dead, 1))
    for _ in range(6):  # 6 days of failures, the schedule's steps included
        clock.advance(days=1)
        before = len(sink.on("/dead"))
        await wait_for(lambda b=before: len(sink.on("/dead")) > b or dead in [e for e, _ in told])
        if dead in [e for e, _ in told]:
            break
    await wait_for(lambda: dead in [e for e, _ in told])
    async with session_factory() as session:
        eps = {e.id: e for e in await service.list_endpoints(session)}
    assert not eps[gone].enabled and "410" in (eps[gone].disabled_reason or "")
    assert not eps[dead].enabled and "days" in (eps[dead].disabled_reason or "")
    sent = len(sink.received)
    await track(session_factory, 1, "order.paid")  # nothing goes to disabled endpoints
    async with unit(session_factory) as session:
        await service.set_enabled(session, gone, True)
    sink.plans["/gone"] = [200]
    await track(session_factory, 1, "order.paid")
    await wait_for(lambda: len(sink.received) > sent)
    assert {r.path for r in sink.received[sent:]} == {"/gone"}


async def test_rotation_sends_both_signatures(session_factory, sink, start_worker):
    ep, old = await add(session_factory, sink.url("/rot"))
    async with unit(session_factory) as session:
        _, new = await service.rotate_secret(session, ep, grace=timedelta(hours=1))
    await start_worker()
    await track(session_factory, 1, "order.paid")
    await wait_for(lambda: sink.on("/rot"))
    got = sink.on("/rot")[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(got.body, got.headers)
    Webhook(old).verify(got.body, got.headers)  # receivers not yet updated keep working
    async with unit(session_factory) as session:
        _, newer = await service.rotate_secret(session, ep, grace=timedelta(0))
    await track(session_factory, 1, "order.paid")
    await wait_for(lambda: len(sink.on("/rot")) >= 2)
    got = sink.on("/rot")[1]
    Webhook(newer).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(got.body, got.headers)


async def test_replay_and_ping_and_filter(session_factory, sink, start_worker):
    async with unit(session_factory) as session:
        session.add_all([User(id=1, markers={"vip": True}), User(id=2, markers={})])
    ep, _ = await add(session_factory, sink.url("/vip"), "order.*", filter_text="vip")
    await start_worker()
    await track(session_factory, 2, "order.paid", {"who": 2})
    await track(session_factory, 1, "order.paid", {"who": 1})
    await wait_for(lambda: sink.on("/vip"))
    first = sink.on("/vip")[0]
    assert json.loads(first.body)["data"]["user_id"] == 1
    event_id = json.loads(first.body)["data"]["event_id"]
    async with unit(session_factory) as session:
        assert await service.replay(session, ep, event_id=event_id) == 1
    await wait_for(lambda: len(sink.on("/vip")) >= 2)
    assert sink.on("/vip")[1].headers["webhook-id"] == first.headers["webhook-id"]
    async with unit(session_factory) as session:
        since = (await session.execute(select(WebhookEndpoint.created_at))).scalar_one()
        assert await service.replay(session, ep, since=since - timedelta(minutes=1)) == 1
        await service.send_test(session, ep)
    await wait_for(lambda: len(sink.on("/vip")) >= 4)  # order is not guaranteed
    assert sorted(json.loads(r.body)["type"] for r in sink.on("/vip")) == [
        "order.paid", "order.paid", "order.paid", "webhook.test"]
    assert all(json.loads(r.body)["data"].get("user_id") in (1, None) for r in sink.on("/vip"))
    async with unit(session_factory) as session:
        with pytest.raises(InvalidInput):
            await service.replay(session, ep, event_id=event_id, since=since)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://[::1]/hook",
    "http://localhost/hook", "http://169.254.169.254/latest", "ftp://example.org/x",
])
async def test_private_addresses_are_refused(session_factory, url):
    async with unit(session_factory) as session:
        with pytest.raises(InvalidInput):
            await service.add_endpoint(session, url, "*")
        assert (await session.execute(select(WebhookEndpoint))).first() is None


async def test_dns_change_to_private_is_refused_at_send(session_factory, sink, start_worker,
                                                        database_url):
    # Added while private addresses were allowed, sent by a worker that forbids them: the
    # address is checked again before every attempt (a DNS answer may change).
    ep, _ = await add(session_factory, sink.url("/x"))
    await start_worker(settings=wh_settings(database_url, webhooks_allow_private=False))
    await track(session_factory, 1, "order.paid")
    await wait_for(lambda: _attempts(session_factory, ep, 1))
    async with session_factory() as session:
        d = (await session.execute(select(WebhookDelivery))).scalar_one()
    assert "private" in (d.last_error or "") and d.last_status is None
    assert sink.received == []
    assert issubclass(AddressRefused, InvalidInput)


async def test_event_committed_after_a_later_one_is_still_delivered(session_factory, sink,
                                                                    start_worker, db):
    """PostgreSQL: ids are taken at insert, not at commit. An event whose transaction commits
    after a later id is visible must not be skipped by the cursor."""
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids are in commit order")
    await add(session_factory, sink.url("/order"))
    running = await start_worker()
    await track(session_factory, 1, "order.paid", {"n": "first"})
    await wait_for(lambda: sink.on("/order"))
    slow = session_factory()
    await slow.begin()
    await record(slow, 1, "order.paid", {"n": "slow"}, source="api")  # takes id N, open
    await track(session_factory, 1, "order.paid", {"n": "fast"})  # id N+1, committed
    dispatcher = running.worker.dispatcher
    # the dispatcher has met the hole and taken its mark of running transactions
    await wait_for(lambda: any(g.mark is not None for g in dispatcher._gaps.values()))
    await slow.commit()
    await slow.close()
    await wait_for(lambda: len(sink.on("/order")) >= 3)
    sent = [json.loads(r.body)["data"]["props"]["n"] for r in sink.on("/order")]
    assert sorted(sent) == ["fast", "first", "slow"]


async def test_429_retry_after_is_honoured(session_factory, sink, start_worker):
    ep, _ = await add(session_factory, sink.url("/busy"))
    sink.plans["/busy"] = [429]
    sink.extra_headers["/busy"] = {"Retry-After": "3600"}
    clock = Clock()
    await start_worker(clock=clock)
    await track(session_factory, 1, "order.paid")
    await wait_for(lambda: _attempts(session_factory, ep, 1))
    async with session_factory() as session:
        d = (await service.list_deliveries(session, ep))[0]
        attempt = (await service.list_attempts(session, d.id))[0]
    assert d.last_status == 429
    assert d.next_attempt_at - attempt.at >= timedelta(seconds=3600)  # not the schedule's 5 s
