"""/users over HTTP: list with filters and cursors, get, PATCH operations, batch, forget."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from relove.events.models import Event
from tests.api.conftest import TokenFactory, add_users, bearer

PROBLEM = "application/problem+json"


async def test_get_user_and_fields(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, {"id": 7, "first_name": "Аня", "markers": {"city": "Москва"}})
    r = await client.get("/api/v1/users/7", headers=admin_headers)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == 7 and body["first_name"] == "Аня"
    assert body["markers"] == {"city": "Москва"} and body["gender"] == "unknown"
    r = await client.get("/api/v1/users/7?fields=markers", headers=admin_headers)
    assert r.json() == {"id": 7, "markers": {"city": "Москва"}}
    r = await client.get("/api/v1/users/7?fields=password", headers=admin_headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    r = await client.get("/api/v1/users/8", headers=admin_headers)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


async def test_list_filters_pages_and_counts(client, session_factory, admin_headers) -> None:
    await add_users(
        session_factory,
        *({"id": i, "markers": {"city": "Москва" if i % 2 else "Казань", "n": i}}
          for i in range(1, 26)),
    )
    seen: list[int] = []
    cursor = None
    while True:
        params = {"filter": 'city = "Москва"', "limit": 5, "fields": "markers"}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/v1/users", params=params, headers=admin_headers)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [u["id"] for u in body["users"]]
        assert all(set(u) == {"id", "markers"} for u in body["users"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    assert seen == list(range(1, 26, 2))
    r = await client.get("/api/v1/users", params={"filter": "n > 20", "count": "true", "limit": 2},
                         headers=admin_headers)  # fmt: skip
    assert r.json()["count"] == 5 and len(r.json()["users"]) == 2


async def test_bad_filter_is_a_problem_with_position(client, admin_headers) -> None:
    r = await client.get("/api/v1/users", params={"filter": "city = "}, headers=admin_headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["code"] == "invalid_filter" and isinstance(body["position"], int)
    r = await client.get("/api/v1/users", params={"cursor": "garbage!"}, headers=admin_headers)
    assert r.status_code == 422


async def test_patch_applies_every_operation_and_records_events(
    client, session_factory, make_token: TokenFactory
) -> None:
    markers = {"tags": ["a", "b"], "score": 1, "old": True, "source": "ads"}
    await add_users(session_factory, {"id": 1, "markers": markers})
    token = await make_token("users:write", name="crm")
    body = {
        "markers": {
            "$set": {"city": "Казань", "profile.age": 30},
            "$set_once": {"source": "organic", "first": "yes"},
            "$unset": ["old"],
            "$inc": {"score": 2.5},
            "$add": {"tags": ["c", "a"]},
        },
        "context": {"$set": {"summary": "likes yoga"}},
        "gender": "female",
    }
    r = await client.patch("/api/v1/users/1", json=body, headers=bearer(token))
    assert r.status_code == 200, r.text
    user = r.json()
    assert user["markers"] == {
        "tags": ["a", "b", "c"], "score": 3.5, "source": "ads", "first": "yes", "city": "Казань",
        "profile": {"age": 30},
    }
    assert user["context"] == {"summary": "likes yoga"} and user["gender"] == "female"
    r = await client.patch("/api/v1/users/1", json={"markers": {"$remove": {"tags": ["a"]}}},
                           headers=bearer(token))  # fmt: skip
    assert r.json()["markers"]["tags"] == ["b", "c"]
    async with session_factory() as session:
        events = (await session.execute(select(Event).order_by(Event.id))).scalars().all()
    assert {e.source for e in events} == {"api"} and {e.actor for e in events} == {"crm"}
    keys = [e.props.get("key") for e in events if e.name == "marker.changed"]
    assert sorted(keys) == sorted(["city", "profile.age", "first", "old", "score", "tags", "tags"])
    assert any(e.name == "user.gender_changed" for e in events)


async def test_patch_of_top_level_markers_answers_the_stored_user(
    client, session_factory, admin_headers
) -> None:
    # $set/$inc of top-level markers: one statement returning the user on PostgreSQL, the
    # operations then a read-back elsewhere — the same answer, events and refusals on both
    await add_users(session_factory, {"id": 1, "username": "anna", "first_name": "Анна",
                                      "markers": {"n": 1, "city": "Тверь"},
                                      "context": {"summary": "йога"}})  # fmt: skip
    body = {"markers": {"$set": {"city": "Тверь", "plan": "pro"}, "$inc": {"n": 2}}}
    r = await client.patch("/api/v1/users/1", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    got = (await client.get("/api/v1/users/1", headers=admin_headers)).json()
    assert r.json() == got
    assert got["markers"] == {"n": 3, "city": "Тверь", "plan": "pro"}
    assert got["username"] == "anna" and got["context"] == {"summary": "йога"}
    async with session_factory() as session:
        events = (await session.scalars(select(Event).order_by(Event.id))).all()
    assert sorted((e.props["key"], e.props.get("old"), e.props["new"]) for e in events) == [
        ("n", 1, 3), ("plan", None, "pro"),  # city did not change: no event
    ]
    big = {"markers": {"$set": {"b": "x" * 70_000}}}
    r = await client.patch("/api/v1/users/1", json=big, headers=admin_headers)
    assert r.status_code == 422 and r.json()["code"] == "document_too_large", r.text
    assert (await client.get("/api/v1/users/1", headers=admin_headers)).json() == got


async def test_patch_is_all_or_nothing(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, {"id": 1, "markers": {"name": "text"}})
    body = {"markers": {"$set": {"city": "Казань"}, "$inc": {"name": 1}}}
    r = await client.patch("/api/v1/users/1", json=body, headers=admin_headers)
    assert r.status_code == 422
    r = await client.get("/api/v1/users/1", headers=admin_headers)
    assert r.json()["markers"] == {"name": "text"}  # the $set rolled back with the failed $inc
    async with session_factory() as session:
        assert (await session.execute(select(Event))).first() is None


async def test_patch_refuses_ambiguous_unknown_and_empty_bodies(
    client, session_factory, admin_headers
) -> None:
    await add_users(session_factory, {"id": 1})
    for body in (
        {"markers": {"$set": {"a": 1}, "$unset": ["a"]}},
        {"markers": {"$set": {"a.b": 1}, "$inc": {"a": 1}}},
        {"markers": {"$push": {"a": 1}}},
        {"nickname": "x"},
        {},
        {"markers": {"$set": {"": 1}}},
        {"markers": {"$inc": {"n": True}}},
        {"markers": {"$inc": {"n": 2**63}}},  # past what both databases hold
        {"markers": {"$inc": {"n": 10**400}}},  # past a float: once an OverflowError (500)
        {"markers": {"$inc": {"n": 10**400}, "$set": {"a": 1}}},
    ):
        r = await client.patch("/api/v1/users/1", json=body, headers=admin_headers)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == PROBLEM
    r = await client.patch("/api/v1/users/2", json={"markers": {"$set": {"a": 1}}},
                           headers=admin_headers)  # fmt: skip
    assert r.status_code == 404
    r = await client.patch("/api/v1/users/1", content=b"{not json",
                           headers={**admin_headers, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


async def test_batch_reports_each_item(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, {"id": 1}, {"id": 2, "markers": {"n": "text"}}, {"id": 3})
    items = [
        {"id": 1, "markers": {"$set": {"plan": "pro"}}},
        {"id": 2, "markers": {"$set": {"plan": "pro"}, "$inc": {"n": 1}}},  # fails as a whole
        {"id": 99, "markers": {"$set": {"plan": "pro"}}},
        {"id": 3, "markers": {"$set": {"a": 1}, "$unset": ["a"]}},
        {"id": 3, "markers": {"$inc": {"visits": 1}}},
        {"id": 1, "markers": {"$inc": {"visits": 10**400}}},  # too big a number: refused
    ]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["succeeded"] == 2 and body["failed"] == 4
    assert [x["status"] for x in body["results"]] == [200, 422, 404, 422, 200, 422]
    assert body["results"][2]["error"]["code"] == "not_found"
    docs = {}
    for uid in (1, 2, 3):
        docs[uid] = (await client.get(f"/api/v1/users/{uid}", headers=admin_headers)).json()
    assert docs[1]["markers"] == {"plan": "pro"}
    assert docs[2]["markers"] == {"n": "text"}
    assert docs[3]["markers"] == {"visits": 1}


async def test_batch_failure_rolls_back_only_its_item(
    client, session_factory, admin_headers
) -> None:
    # all items are tried together first; one failing item must not leave the others
    # applied twice nor lose them, and a gender-only item for a missing user is a 404
    await add_users(session_factory, {"id": 1}, {"id": 2})
    items = [
        {"id": 1, "markers": {"$set": {"plan": "pro"}, "$inc": {"visits": 1}}},
        {"id": 2, "gender": "female"},
        {"id": 77, "gender": "male"},
        {"id": 2, "markers": {"$inc": {"visits": 2}}},
    ]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == [200, 200, 404, 200]
    one = (await client.get("/api/v1/users/1", headers=admin_headers)).json()
    two = (await client.get("/api/v1/users/2", headers=admin_headers)).json()
    assert one["markers"] == {"plan": "pro", "visits": 1}
    assert two["markers"] == {"visits": 2} and two["gender"] == "female"
    async with session_factory() as session:
        names = (await session.scalars(
            select(Event.name).where(Event.user_id.in_([1, 2])).order_by(Event.id)
        )).all()  # fmt: skip
    assert sorted(names) == sorted(
        ["marker.changed", "marker.changed", "user.gender_changed", "marker.changed"]
    )

    # every item applies: one pass, each change recorded once
    items = [{"id": 1, "markers": {"$inc": {"visits": 1}}}, {"id": 2, "is_active": False}]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert r.json()["succeeded"] == 2
    one = (await client.get("/api/v1/users/1", headers=admin_headers)).json()
    two = (await client.get("/api/v1/users/2", headers=admin_headers)).json()
    assert one["markers"]["visits"] == 2 and two["is_active"] is False


async def test_batch_of_marker_sets(client, session_factory, admin_headers) -> None:
    # the common batch (only $set of top-level markers; one statement on PostgreSQL): per-item
    # results, an event per value that really changes, a too-large document refused alone
    await add_users(session_factory, {"id": 1, "markers": {"plan": "pro"}}, {"id": 2}, {"id": 3})
    items = [
        {"id": 1, "markers": {"$set": {"plan": "pro", "city": "Тверь"}}},
        {"id": 404, "markers": {"$set": {"plan": "pro"}}},
        {"id": 2, "markers": {"$set": {"tags": ["a", "b"], "vip": True}}},
    ]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert [x["status"] for x in r.json()["results"]] == [200, 404, 200]
    one = (await client.get("/api/v1/users/1", headers=admin_headers)).json()
    two = (await client.get("/api/v1/users/2", headers=admin_headers)).json()
    assert one["markers"] == {"plan": "pro", "city": "Тверь"}
    assert two["markers"] == {"tags": ["a", "b"], "vip": True}
    async with session_factory() as session:
        events = (await session.scalars(select(Event).order_by(Event.id))).all()
    changed = sorted((e.user_id, e.props["key"], e.source) for e in events)
    assert changed == [(1, "city", "api"), (2, "tags", "api"), (2, "vip", "api")]
    assert next(e for e in events if e.props["key"] == "city").props["new"] == "Тверь"

    big = "x" * 70_000
    items = [{"id": 3, "markers": {"$set": {"ok": 1}}}, {"id": 2, "markers": {"$set": {"b": big}}}]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert [x["status"] for x in r.json()["results"]] == [200, 422]
    three = (await client.get("/api/v1/users/3", headers=admin_headers)).json()
    assert three["markers"] == {"ok": 1}


async def test_batch_of_marker_increments(client, session_factory, admin_headers) -> None:
    # $inc (with $set) of top-level markers: one statement on PostgreSQL, item by item on
    # SQLite — the same values, per-item results and events on both
    await add_users(
        session_factory,
        {"id": 1, "markers": {"n": 2, "x": 0.5}},
        {"id": 2, "markers": {"n": None}},
        {"id": 3, "markers": {"n": 1, "s": "text", "t": [1]}},
        {"id": 4},
    )
    items = [
        {"id": 1, "markers": {"$inc": {"n": 3, "x": 0.25}, "$set": {"plan": "pro"}}},
        {"id": 2, "markers": {"$inc": {"n": 1}}},
        {"id": 3, "markers": {"$inc": {"n": 1, "t": 1, "s": 1}}},
        {"id": 404, "markers": {"$inc": {"n": 1}}},
        {"id": 4, "markers": {"$inc": {"zero": 0, "m": -1.5}}},
    ]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [200, 200, 422, 404, 200]
    assert body["succeeded"] == 3 and body["failed"] == 2
    assert body["results"][2]["error"]["detail"] == (
        "markers.t is not a number; nothing was changed"
    )
    markers = {uid: (await client.get(f"/api/v1/users/{uid}", headers=admin_headers)).json()
               ["markers"] for uid in (1, 2, 3, 4)}  # fmt: skip
    assert markers[1] == {"n": 5, "x": 0.75, "plan": "pro"}
    assert markers[2] == {"n": 1}
    assert markers[3] == {"n": 1, "s": "text", "t": [1]}  # the whole item refused
    assert markers[4] == {"zero": 0, "m": -1.5}
    async with session_factory() as session:
        events = (await session.scalars(select(Event).order_by(Event.id))).all()
    changed = sorted((e.user_id, e.props["key"], e.props.get("old"), e.props["new"], e.source)
                     for e in events if e.name == "marker.changed")  # fmt: skip
    assert changed == [
        (1, "n", 2, 5, "api"), (1, "plan", None, "pro", "api"), (1, "x", 0.5, 0.75, "api"),
        (2, "n", None, 1, "api"),
        (4, "m", None, -1.5, "api"), (4, "zero", None, 0, "api"),
    ]


async def test_batch_limits(client, admin_headers) -> None:
    items = [{"id": i + 1, "markers": {"$set": {"a": 1}}} for i in range(1001)]
    r = await client.post("/api/v1/users:batch", json={"items": items}, headers=admin_headers)
    assert r.status_code == 422
    r = await client.post("/api/v1/users:batch", json={"items": []}, headers=admin_headers)
    assert r.status_code == 422


async def test_delete_forgets_the_user(client, session_factory, make_token) -> None:
    await add_users(session_factory, {"id": 5, "markers": {"a": 1}})
    token = await make_token("users:write", "users:read", name="gdpr")
    r = await client.delete("/api/v1/users/5", headers=bearer(token))
    assert r.status_code == 204
    assert (await client.get("/api/v1/users/5", headers=bearer(token))).status_code == 404
    assert (await client.delete("/api/v1/users/5", headers=bearer(token))).status_code == 404
    async with session_factory() as session:
        events = (await session.execute(select(Event))).scalars().all()
    assert [(e.name, e.user_id, e.source, e.actor) for e in events] == [
        ("user.deleted", 5, "api", "gdpr")
    ]


async def test_fifty_parallel_patches_lose_nothing(
    client: httpx.AsyncClient, session_factory, admin_headers
) -> None:
    await add_users(session_factory, {"id": 1})

    async def one(i: int) -> int:
        body = {"markers": {"$inc": {"count": 1}, "$add": {"seen": [i]}, "$set": {f"k{i}": i}}}
        r = await client.patch("/api/v1/users/1", json=body, headers=admin_headers)
        return r.status_code

    statuses = await asyncio.gather(*(one(i) for i in range(50)))
    assert statuses == [200] * 50
    markers = (await client.get("/api/v1/users/1", headers=admin_headers)).json()["markers"]
    assert markers["count"] == 50
    assert sorted(markers["seen"]) == list(range(50))
    assert all(markers[f"k{i}"] == i for i in range(50))


async def test_list_filter_takes_did(client, session_factory, admin_headers) -> None:
    from relove.events.record import record

    await add_users(session_factory, *({"id": i} for i in range(1, 4)))
    async with session_factory.begin() as s:
        await record(s, 2, "message.received", {}, source="bot")
    r = await client.get("/api/v1/users", params={"filter": 'not did "message.received"',
                                                  "count": "true"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert [u["id"] for u in r.json()["users"]] == [1, 3] and r.json()["count"] == 2
    r = await client.get("/api/v1/users", params={"filter": 'did "x" >= 2000000 times'},
                         headers=admin_headers)  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "invalid_filter"
