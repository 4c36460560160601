"""/segments over HTTP: CRUD of saved segments and segments:count with error positions."""

from __future__ import annotations

from tests.api.conftest import add_users

PROBLEM = "application/problem+json"


async def test_segment_crud(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, *({"id": i, "markers": {"n": i}} for i in range(1, 11)))
    h = admin_headers
    r = await client.post("/api/v1/segments", headers=h,
                          json={"name": "big", "filter": "n > 6", "description": "top"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "big" and r.json()["filter"] == "n > 6"
    r = await client.post("/api/v1/segments", headers=h, json={"name": "big", "filter": "n > 1"})
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    r = await client.post("/api/v1/segments", headers=h,
                          json={"name": "bigger", "filter": 'segment:"big" and n > 8'})
    assert r.status_code == 201
    r = await client.get("/api/v1/segments/bigger", params={"count": "true"}, headers=h)
    assert r.json()["count"] == 2
    r = await client.get("/api/v1/segments", headers=h)
    assert [s["name"] for s in r.json()["segments"]] == ["big", "bigger"]
    r = await client.patch("/api/v1/segments/big", headers=h, json={"filter": "n > 4"})
    assert r.status_code == 200 and r.json()["filter"] == "n > 4"
    assert r.json()["description"] == "top"
    r = await client.get("/api/v1/segments/bigger?count=true", headers=h)
    assert r.json()["count"] == 2  # n > 8 within n > 4
    # deleting a segment another refers to is refused; nothing changes
    r = await client.delete("/api/v1/segments/big", headers=h)
    assert r.status_code == 422 and "bigger" in r.json()["detail"]
    assert (await client.delete("/api/v1/segments/bigger", headers=h)).status_code == 204
    assert (await client.delete("/api/v1/segments/big", headers=h)).status_code == 204
    assert (await client.get("/api/v1/segments/big", headers=h)).status_code == 404
    assert (await client.patch("/api/v1/segments/big", headers=h,
                               json={"filter": "n > 1"})).status_code == 404  # fmt: skip


async def test_names_with_slashes_and_spaces(client, admin_headers) -> None:
    from urllib.parse import quote

    h = admin_headers
    r = await client.post("/api/v1/segments", headers=h, json={"name": "a/b c", "filter": "vip"})
    assert r.status_code == 201
    path = "/api/v1/segments/" + quote("a/b c", safe="")
    assert (await client.get(path, headers=h)).json()["name"] == "a/b c"
    assert (await client.delete(path, headers=h)).status_code == 204


async def test_invalid_segments_are_refused(client, admin_headers) -> None:
    h = admin_headers
    for body in (
        {"name": "x", "filter": "n >"},
        {"name": "x", "filter": 'segment:"missing"'},
        {"name": " ", "filter": "n > 1"},
        {"name": "x", "filter": "n > 1", "owner": "me"},
        {"name": "x" * 65, "filter": "n > 1"},
    ):
        r = await client.post("/api/v1/segments", headers=h, json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == PROBLEM
    assert (await client.get("/api/v1/segments", headers=h)).json() == {"segments": []}


async def test_count_or_the_error_with_its_position(client, session_factory, admin_headers) -> None:
    await add_users(session_factory, *({"id": i, "markers": {"city": "Москва" if i % 3 else
                                                              "Казань"}} for i in range(1, 10)))
    h = admin_headers
    r = await client.post("/api/v1/segments:count", headers=h, json={"filter": 'city = "Москва"'})
    assert r.status_code == 200 and r.json() == {"count": 6}
    r = await client.post("/api/v1/segments:count", headers=h, json={})
    assert r.json() == {"count": 9}
    r = await client.post("/api/v1/segments:count", headers=h,
                          json={"filter": 'city = "Москва" or n >'})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["code"] == "invalid_filter" and body["position"] == 23
