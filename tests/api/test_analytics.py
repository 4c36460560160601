"""/analytics over HTTP: the same figures as the services the CLI calls, under filters."""

from __future__ import annotations

from datetime import timedelta

from relove.db.types import utcnow
from tests.api.conftest import add_users

PROBLEM = "application/problem+json"


async def _seed(client, session_factory, headers) -> None:
    now = utcnow()
    await add_users(session_factory, *(
        {"id": i, "gender": "female" if i % 2 else "male", "last_seen_at": now - timedelta(days=i),
         "created_at": now - timedelta(hours=1),
         "markers": {"source": "ads" if i <= 3 else "organic", "tags": ["a", "b"][: i % 3]}}
        for i in range(1, 7)
    ))  # fmt: skip
    events = []
    for uid in (1, 2, 3, 4):
        events.append({"user_id": uid, "name": "cart.opened"})
    for uid in (1, 2, 3):
        events.append({"user_id": uid, "name": "order.paid"})
    events.append({"user_id": 1, "name": "message.received"})
    r = await client.post("/api/v1/events", json={"events": events}, headers=headers)
    assert r.json()["recorded"] == len(events)


async def test_overview_activity_and_breakdown(client, session_factory, admin_headers) -> None:
    await _seed(client, session_factory, admin_headers)
    h = admin_headers
    r = await client.get("/api/v1/analytics/overview", params={"days": 3}, headers=h)
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["total"] == 6 and o["active"] == 6 and len(o["new_per_day"]) == 3
    assert o["new_per_day"][-1]["count"] + o["new_per_day"][-2]["count"] == 6
    assert o["by_gender"] == {"female": 3, "male": 3}
    assert {row["value"]: row["count"] for row in o["by_source"]["rows"]} == {
        "ads": 3, "organic": 3}
    r = await client.get("/api/v1/analytics/activity", params={"filter": 'source = "ads"'},
                         headers=h)  # fmt: skip
    assert r.json() == {"total": 3, "dau": 0, "wau": 3, "mau": 3}
    r = await client.get("/api/v1/analytics/breakdown", params={"field": "tags"}, headers=h)
    b = r.json()
    assert b["total"] == 6 and b["not_set"] == 0
    assert {row["value"]: row["count"] for row in b["rows"]} == {"a": 4, "b": 2}
    r = await client.get("/api/v1/analytics/breakdown", params={"field": "tags.."}, headers=h)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


async def test_events_funnel_and_retention(client, session_factory, admin_headers) -> None:
    await _seed(client, session_factory, admin_headers)
    h = admin_headers
    r = await client.get("/api/v1/analytics/events", params={"name": "order.*"}, headers=h)
    assert [(c["name"], c["events"], c["users"]) for c in r.json()["counts"]] == [
        ("order.paid", 3, 3)]
    r = await client.get("/api/v1/analytics/funnel", headers=h,
                         params={"steps": "cart.opened,order.paid", "within": "1d"})
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert [(s["name"], s["users"]) for s in steps] == [("cart.opened", 4), ("order.paid", 3)]
    assert steps[1]["conversion"] == 0.75
    r = await client.get("/api/v1/analytics/funnel", headers=h,
                         params={"steps": "cart.opened,order.paid", "filter": "gender = "})
    assert r.status_code == 422 and r.json()["code"] == "invalid_filter"
    r = await client.get("/api/v1/analytics/funnel", params={"steps": "cart.opened"}, headers=h)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    r = await client.get("/api/v1/analytics/retention", headers=h,
                         params={"period": "day", "cohorts": 2, "events": "message.received"})
    assert r.status_code == 200, r.text
    ret = r.json()
    assert ret["period"] == "day" and len(ret["cohorts"]) == 2
    today = ret["cohorts"][-1]
    if today["users"] == 6:  # all created an hour ago: today's cohort, unless just past midnight
        assert today["active"] == [1]
