"""Every console action is an event with the admin as actor; the log page and the user card
show them; tracked links record link.clicked; conversion of the clickers."""

from __future__ import annotations

import re

from sqlalchemy import select

from relove.broadcasts.links import TrackedLink, tracked_url
from relove.broadcasts.service import get_broadcast
from relove.events import record
from relove.events.models import Event, Message
from relove.users import service
from tests.web.conftest import OPERATOR_ID, OWNER_ID, Browser, ConsoleHarness, add_users


async def _events(console: ConsoleHarness) -> list[Event]:
    async with console.sessions() as s:
        return list((await s.execute(select(Event).order_by(Event.id))).scalars())


async def test_console_actions_are_events_with_the_admin_as_actor(
        console: ConsoleHarness) -> None:
    await add_users(console.sessions, [{"id": 21, "first_name": "Ася", "markers": {"VIP": True}}])
    operator = await console.login(OPERATOR_ID)
    owner = await console.login(OWNER_ID)
    await operator.post_form("/users/21/markers", {"key": "city", "value": "Сочи"})
    await operator.post_form("/users/21/markers/unset", {"key": "city"})
    await operator.post_form("/segments", {"name": "vip", "filter": "VIP"})
    await operator.post_form("/audience/bulk", {"filter": "VIP", "op": "add_tag", "value": "t"})
    r = await operator.post_form("/broadcasts", {"name": "b", "filter": "VIP", "text": "hi"})
    bid = int(r.headers["HX-Redirect"].rsplit("/", 1)[1])
    await operator.post_form(f"/broadcasts/{bid}/start")
    await operator.post_form(f"/broadcasts/{bid}/pause")
    await operator.get("/audience/export.csv", params={"filter": "VIP"})
    await owner.post_form("/settings/admins", {"user_id": "55", "role": "viewer"})
    events = await _events(console)
    mine = [(e.name, e.props.get("key")) for e in events if e.actor == f"admin:{OPERATOR_ID}"]
    assert mine == [
        ("admin.logged_in", None),
        ("marker.changed", "city"), ("marker.changed", "city"),
        ("segment.saved", None),
        ("marker.changed", "tags"), ("bulk.applied", None),
        ("broadcast.created", None), ("broadcast.started", None), ("broadcast.paused", None),
        ("users.exported", None),
    ]
    by_console = {e.name for e in events if e.source == "console"}
    assert {"admin.added", "admin.logged_in", "bulk.applied"} <= by_console
    changed = [e for e in events if e.name == "marker.changed" and e.props["key"] == "city"]
    assert [e.props["new"] for e in changed] == ["Сочи", None]
    assert all(e.source == "console" and e.user_id == 21 for e in changed)
    # the log page lists them, newest first, and narrows to one admin
    log = await owner.get("/log")
    assert log.text.index("admin.added") < log.text.index("broadcast.paused")
    only = await owner.get("/log", params={"admin": OPERATOR_ID})
    assert "admin.added" not in only.text and "segment.saved" in only.text
    # the user card's timeline shows who changed what
    card = await owner.get("/users/21")
    assert "marker.changed" in card.text and f"admin:{OPERATOR_ID}" in card.text


async def test_timeline_scrolls_with_a_cursor(owner: Browser, console: ConsoleHarness) -> None:
    await add_users(console.sessions, [{"id": 22, "first_name": "Лев"}])
    async with console.sessions.begin() as s:
        for i in range(75):
            await record(s, 22, "page.viewed", {"n": i}, source="api")
    card = await owner.get("/users/22")
    seen = re.findall(r"&#34;n&#34;: (\d+)", card.text)
    nxt = re.search(r'hx-get="(/users/22/events\?cursor=[^"]+)"', card.text)
    while nxt:
        r = await owner.get(nxt.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
        seen += re.findall(r"&#34;n&#34;: (\d+)", r.text)
        nxt = re.search(r'hx-get="(/users/22/events\?cursor=[^"]+)"', r.text)
    assert [int(n) for n in seen] == list(range(74, -1, -1))


async def test_conversation_shows_both_directions(owner: Browser,
                                                  console: ConsoleHarness) -> None:
    from relove.events import NewEvent, NewMessage, record_many
    from relove.events.conversation import record_outgoing

    await add_users(console.sessions, [{"id": 23, "first_name": "Ян"}])
    async with console.sessions.begin() as s:
        await record_many(s, [NewEvent(23, "message.received", {"message_id": 1},
                                       message=NewMessage("text", "как дела?", 1))],
                          source="bot")
        await record_outgoing(s, 23, "Отлично, <b>спасибо</b>!", message_id=2, kind="reply",
                              source="bot")
    card = await owner.get("/users/23")
    assert card.text.index("как дела?") < card.text.index("Отлично, &lt;b&gt;спасибо&lt;/b&gt;!")
    async with console.sessions() as s:
        rows = (await s.execute(select(Message.direction).order_by(Message.id))).scalars().all()
    assert rows == ["in", "out"]


async def test_tracked_clicks_and_conversion(owner: Browser, console: ConsoleHarness) -> None:
    await add_users(console.sessions, [{"id": i, "first_name": f"U{i}", "markers": {"VIP": True}}
                                       for i in (31, 32, 33)])
    r = await owner.post_form("/broadcasts", {"name": "b", "filter": "VIP", "text": "hi",
                                              "buttons": "Go | https://go.example", "track": "1"})
    bid = int(r.headers["HX-Redirect"].rsplit("/", 1)[1])
    async with console.sessions() as s:
        b = await get_broadcast(s, bid)
        link = (await s.execute(select(TrackedLink))).scalar_one()
    key = b.options["links"]["key"]
    async with console.client() as anyone:
        for uid in (31, 31, 32):
            url = tracked_url("https://console.test", key, link.id, uid)
            r = await anyone.get(url.removeprefix("https://console.test"))
            assert r.headers["location"] == "https://go.example"
        forged = tracked_url("https://console.test", "00" * 16, link.id, 33)
        await anyone.get(forged.removeprefix("https://console.test"))
    clicks = [e for e in await _events(console) if e.name == "link.clicked"]
    assert [(e.user_id, e.props["broadcast_id"], e.source) for e in clicks] == [
        (31, bid, "console"), (31, bid, "console"), (32, bid, "console")]
    page = await owner.get(f"/broadcasts/{bid}")
    assert re.search(r'<td class="num">3</td><td class="num">2</td>', page.text)
    async with console.sessions.begin() as s:  # 31 buys after clicking; 33 did not click
        await service.set_values(s, 31, {"bought": True}, source="bot")
        await service.set_values(s, 33, {"bought": True}, source="bot")
    r = await owner.get(f"/broadcasts/{bid}/conversion",
                        params={"kind": "marker", "name": "bought", "days": 7})
    assert 'data-converted="1"' in r.text and "1 из 2" in r.text
    r = await owner.get(f"/broadcasts/{bid}/conversion",
                        params={"kind": "event", "name": "link.clicked", "days": 7})
    assert 'data-converted="2"' in r.text
    bad = await owner.get(f"/broadcasts/{bid}/conversion", params={"kind": "event",
                                                                   "name": "Bad Name"})
    assert bad.status_code == 422
