"""Every page renders for every role; the role matrix; hostile data renders as text."""

from __future__ import annotations

from sqlalchemy import select

from relove.admins.models import Admin
from relove.broadcasts.content import MessageContent
from relove.broadcasts.service import create_broadcast
from relove.db.models import User
from tests.web.conftest import OPERATOR_ID, OWNER_ID, VIEWER_ID, Browser, ConsoleHarness, add_users

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_MARKERS = {"bio": "<script>alert(2)</script>", "tpl": "{{7*7}}", "link": "<a href=x>y</a>",
                   "<b>key</b>": "v"}


async def _seed(console: ConsoleHarness) -> int:
    await add_users(console.sessions, [
        {"id": 1, "first_name": HOSTILE_NAME, "last_name": "{{7*7}}", "username": "evil",
         "markers": HOSTILE_MARKERS, "context": {"summary": "<i>s</i>"}},
        {"id": 2, "first_name": "Анна", "markers": {"city": "Москва", "VIP": True}},
    ])
    async with console.sessions.begin() as s:
        b = await create_broadcast(s, name=HOSTILE_NAME, filter_text="VIP",
                                   content=MessageContent(text="Привет, {{ user.first_name }}!"))
        return b.id


def _pages(broadcast_id: int) -> list[str]:
    return ["/", "/audience", "/audience?filter=bio+exists", "/audience/count?filter=VIP",
            "/audience/rows?filter=bio+exists", "/users/1", "/users/1/chat", "/segments",
            "/segments/edit", "/broadcasts", "/broadcasts/new", f"/broadcasts/{broadcast_id}",
            f"/broadcasts/new?copy={broadcast_id}"]


async def test_every_page_renders_for_every_role(console: ConsoleHarness) -> None:
    bid = await _seed(console)
    for admin_id in (OWNER_ID, OPERATOR_ID, VIEWER_ID):
        browser = await console.login(admin_id)
        for path in _pages(bid):
            r = await browser.get(path)
            assert r.status_code == 200, (admin_id, path, r.text[:500])


async def test_hostile_data_is_text_everywhere(owner: Browser, console: ConsoleHarness) -> None:
    bid = await _seed(console)
    for path in [*_pages(bid), "/audience?cols=bio&cols=tpl&cols=link&cols=%3Cb%3Ekey%3C%2Fb%3E"]:
        r = await owner.get(path)
        assert r.status_code == 200, path
        assert "<img src=x" not in r.text, path
        assert "<script>alert" not in r.text, path
        assert "<a href=x>" not in r.text and "<b>key</b>" not in r.text, path
        assert ">49<" not in r.text, path  # {{7*7}} is never evaluated
    card = await owner.get("/users/1")
    assert "&lt;img src=x onerror=alert(1)&gt;" in card.text
    assert "{{7*7}}" in card.text and "&lt;script&gt;alert(2)&lt;/script&gt;" in card.text
    table = await owner.get("/audience?filter=bio+exists&cols=bio&cols=tpl")
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in table.text and "{{7*7}}" in table.text


async def test_role_matrix(console: ConsoleHarness) -> None:
    await _seed(console)
    viewer = await console.login(VIEWER_ID)
    operator = await console.login(OPERATOR_ID)
    owner = await console.login(OWNER_ID)
    writes = [
        ("/users/2/markers", {"key": "city", "value": "Казань"}),
        ("/users/2/markers/unset", {"key": "city"}),
        ("/segments", {"name": "v", "filter": "VIP"}),
        ("/audience/bulk", {"filter": "VIP", "op": "add_tag", "value": "x"}),
        ("/broadcasts", {"name": "b", "filter": "VIP", "text": "hi"}),
    ]
    for path, data in writes:
        r = await viewer.post_form(path, data)
        assert r.status_code == 403, path
    assert (await viewer.get("/audience/export.csv")).status_code == 403
    async with console.sessions() as s:
        user = await s.get(User, 2)
        assert user is not None and user.markers["city"] == "Москва"  # nothing changed
    for path, data in writes:
        r = await operator.post_form(path, data)
        assert r.status_code in (200, 204), (path, r.text[:300])
    assert (await operator.get("/audience/export.csv")).status_code == 200
    # settings: owners only
    assert (await operator.get("/settings")).status_code == 403
    assert (await viewer.get("/settings")).status_code == 403
    r = await operator.post_form("/settings/admins", {"user_id": "77", "role": "owner"})
    assert r.status_code == 403
    assert (await owner.get("/settings")).status_code == 200
    nav_viewer = (await viewer.get("/")).text
    assert 'href="/settings"' not in nav_viewer
    assert 'href="/settings"' in (await owner.get("/")).text


async def test_settings_manage_admins(owner: Browser, console: ConsoleHarness) -> None:
    r = await owner.post_form("/settings/admins", {"user_id": "77", "role": "viewer",
                                                   "note": "<b>new</b>"})
    assert r.status_code == 204
    page = await owner.get("/settings")
    assert "&lt;b&gt;new&lt;/b&gt;" in page.text
    r = await owner.post_form("/settings/admins", {"user_id": "77", "role": "operator"})
    async with console.sessions() as s:
        admin = await s.get(Admin, 77)
        assert admin is not None and admin.role.value == "operator"
    bad = await owner.post_form("/settings/admins", {"user_id": "x", "role": "operator"})
    assert bad.status_code == 422 and "not a Telegram user id" in bad.text
    bad = await owner.post_form("/settings/admins", {"user_id": "78", "role": "god"})
    assert bad.status_code == 422 and "unknown role" in bad.text
    me = await owner.post_form("/settings/admins/remove", {"user_id": str(OWNER_ID)})
    assert me.status_code == 422
    r = await owner.post_form("/settings/admins/remove", {"user_id": "77"})
    assert r.status_code == 204
    async with console.sessions() as s:
        assert (await s.scalar(select(Admin).where(Admin.id == 77))) is None


async def test_unknown_user_and_broadcast_are_404(owner: Browser) -> None:
    assert (await owner.get("/users/5")).status_code == 404
    assert (await owner.get("/users/0")).status_code == 404
    assert (await owner.get("/broadcasts/99")).status_code == 404
    assert (await owner.get("/users/abc")).status_code == 422
