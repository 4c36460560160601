"""Audience: live count and errors with position, cursor pages, columns from marker keys,
bulk actions through the marker service, CSV export, save as segment."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from relove.db.models import User
from relove.segments.service import get_segment
from tests.web.conftest import OPERATOR_ID, Browser, ConsoleHarness, MakeConsole, add_users


async def _seed(console: ConsoleHarness, n: int = 120) -> None:
    rows = []
    for i in range(1, n + 1):
        markers = {"city": "Москва" if i % 3 == 0 else "Казань", "score": i}
        if i % 10 == 0:
            markers["VIP"] = True
        rows.append({"id": i, "first_name": f"U{i}", "markers": markers})
    await add_users(console.sessions, rows)


def _count(html: str) -> int:
    m = re.search(r'data-count="(\d+)"', html)
    assert m, html
    return int(m.group(1))


async def test_live_count_and_errors_with_position(owner: Browser, console: ConsoleHarness) -> None:
    await _seed(console)
    r = await owner.get("/audience/count", params={"filter": 'city = "Москва"'},
                        headers={"HX-Request": "true"})
    assert r.status_code == 200 and _count(r.text) == 40
    assert "<html" not in r.text  # a fragment
    assert _count((await owner.get("/audience/count", params={"filter": ""})).text) == 120
    active = await owner.get("/audience/count", params={"filter": "VIP", "active": "true"})
    assert _count(active.text) == 12
    bad = await owner.get("/audience/count", params={"filter": "city = "})
    assert "position 7" in bad.text and 'class="caret"' in bad.text
    caret = re.search(r'<code class="caret">(.*?)</code>', bad.text, re.S)
    assert caret is not None and caret.group(1).split("\n")[1] == " " * 6 + "^"
    refused = await owner.get("/audience/count", params={"filter": 'segment:"nope"'})
    assert "unknown segment" in refused.text


async def test_table_pages_with_a_cursor_and_marker_columns(owner: Browser,
                                                            console: ConsoleHarness) -> None:
    await _seed(console)
    page = await owner.get("/audience", params={"filter": "score > 0"})
    ids = [int(i) for i in re.findall(r'href="/users/(\d+)"', page.text)]
    assert ids == list(range(1, 51))
    # default columns: the most common marker keys, with their types in the picker
    assert "<th>city</th>" in page.text and "<th>score</th>" in page.text
    assert "число" in page.text and "текст" in page.text
    more = re.search(r'hx-get="(/audience/rows\?[^"]+)"', page.text)
    assert more is not None
    seen = set(ids)
    url = more.group(1).replace("&amp;", "&")
    while url:
        r = await owner.get(url, headers={"HX-Request": "true"})
        batch = [int(i) for i in re.findall(r'href="/users/(\d+)"', r.text)]
        assert not seen & set(batch)
        seen |= set(batch)
        nxt = re.search(r'hx-get="(/audience/rows\?[^"]+)"', r.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert seen == set(range(1, 121))
    chosen = await owner.get("/audience", params={"filter": "VIP", "cols": ["VIP", "nope"]})
    assert "<th>VIP</th>" in chosen.text and "<th>nope</th>" not in chosen.text
    assert "<th>city</th>" not in chosen.text


async def test_bulk_actions_change_exactly_the_matching_users(operator: Browser,
                                                              console: ConsoleHarness) -> None:
    await _seed(console)
    r = await operator.post_form("/audience/bulk", {"filter": "VIP", "op": "set", "key": "tier",
                                                    "kind": "number", "value": "2"})
    assert r.status_code == 200 and "12" in r.text
    r = await operator.post_form("/audience/bulk", {"filter": "VIP", "op": "add_tag",
                                                    "value": "клуб"})
    assert r.status_code == 200
    r = await operator.post_form("/audience/bulk", {"filter": "score <= 10", "op": "unset",
                                                    "key": "city"})
    assert r.status_code == 200
    async with console.sessions() as s:
        users = {u.id: u for u in (await s.execute(select(User))).scalars()}
    for uid, u in users.items():
        assert (u.markers.get("tier") == 2) == (uid % 10 == 0)
        assert (u.markers.get("tags") == ["клуб"]) == (uid % 10 == 0)
        assert ("city" in u.markers) == (uid > 10)
        assert u.markers["score"] == uid  # other keys untouched
    r = await operator.post_form("/audience/bulk", {"filter": "VIP", "op": "remove_tag",
                                                    "value": "клуб"})
    async with console.sessions() as s:
        tags = (await s.execute(select(User.markers).where(User.id == 10))).scalar_one()["tags"]
    assert tags == []
    bad = await operator.post_form("/audience/bulk", {"filter": "VIP", "op": "set",
                                                      "key": "a..b", "value": "1"})
    assert bad.status_code == 422
    bad = await operator.post_form("/audience/bulk", {"filter": "VIP", "op": "set", "key": "n",
                                                      "kind": "number", "value": "abc"})
    assert bad.status_code == 422 and "not a number" in bad.text


async def test_bulk_refuses_more_than_the_limit(make_console: MakeConsole) -> None:
    console = await make_console(console_bulk_max=5)
    await _seed(console, 20)
    operator = await console.login(OPERATOR_ID)
    r = await operator.post_form("/audience/bulk", {"filter": "score > 0", "op": "set",
                                                    "key": "x", "value": "1"})
    assert r.status_code == 422 and "at most 5" in r.text
    async with console.sessions() as s:
        assert all("x" not in m for m in (await s.execute(select(User.markers))).scalars())


async def test_export_csv_streams_the_filter(operator: Browser, console: ConsoleHarness) -> None:
    await _seed(console, 30)
    await add_users(console.sessions, [{"id": 999, "first_name": "=HYPERLINK(\"x\")",
                                        "markers": {"VIP": True}}])
    r = await operator.get("/audience/export.csv", params={"filter": "VIP"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [int(row["id"]) for row in rows] == [10, 20, 30, 999]
    assert rows[-1]["first_name"].startswith("'=")  # never a formula in a spreadsheet
    assert [row["markers.score"] for row in rows] == ["10", "20", "30", ""]
    assert rows[0]["markers.city"] == "Казань" and rows[0]["markers.VIP"] == "true"
    bad = await operator.get("/audience/export.csv", params={"filter": "city ="})
    assert bad.status_code == 422


async def test_save_filter_as_segment(operator: Browser, console: ConsoleHarness) -> None:
    r = await operator.post_form("/segments", {"name": "VIP Москва",
                                               "filter": 'VIP and city = "Москва"'}, htmx=False)
    assert r.status_code == 303
    async with console.sessions() as s:
        assert (await get_segment(s, "VIP Москва")).filter == 'VIP and city = "Москва"'
    bad = await operator.post_form("/segments", {"name": "x", "filter": "city ="}, htmx=False)
    assert bad.status_code == 422 and "position" in bad.text
    listing = await operator.get("/segments")
    assert "VIP Москва" in listing.text
    r = await operator.post_form("/segments/delete", {"name": "VIP Москва"})
    assert r.status_code == 204
    assert "VIP Москва" not in (await operator.get("/segments")).text


async def test_live_count_takes_did(owner: Browser, console: ConsoleHarness) -> None:
    from relove.events.record import record

    await _seed(console, 12)
    async with console.sessions.begin() as s:
        for uid in (3, 6, 9):
            await record(s, uid, "message.received", {}, source="bot")
    r = await owner.get("/audience/count", params={"filter": 'did "message.received" within 1d'})
    assert _count(r.text) == 3
    r = await owner.get("/audience/count",
                        params={"filter": 'city = "Москва" and did "message.received" = 0 times'})
    assert _count(r.text) == 1  # user 12
