"""The console's AI session pages: a list and one session's transcript and result, for every
signed-in role; nothing without a session; data is text, never markup."""

from __future__ import annotations

from relove.conversation.ai_sessions import store
from relove.conversation.ai_sessions.models import SessionStatus
from tests.web.conftest import Browser, ConsoleHarness, add_users


async def _session(console: ConsoleHarness) -> int:
    await add_users(console.sessions, [{"id": 42, "first_name": "Ира"}])
    async with console.sessions.begin() as s:
        sid, _ = await store.open_session(s, 42, "diagnostic")
        row = await store.get(s, sid)
        assert row is not None
        await store.add_turn(s, row, "assistant", "Привет!")
        await store.add_turn(s, row, "user", "<script>alert(1)</script>")
        await store.close(s, row, SessionStatus.completed, "requested",
                          result={"journey_stage": "Зов к приключению"})  # fmt: skip
    return sid


async def test_list_and_transcript(console: ConsoleHarness, viewer: Browser):
    sid = await _session(console)
    listing = await viewer.get("/ai-sessions")
    assert listing.status_code == 200
    assert f'href="/ai-sessions/{sid}"' in listing.text and "diagnostic" in listing.text
    assert "diagnostic" not in (await viewer.get("/ai-sessions?user=7")).text.split("<tbody>")[1]

    page = await viewer.get(f"/ai-sessions/{sid}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    assert "Зов к приключению" in page.text and "requested" in page.text
    assert (await viewer.get("/ai-sessions/999999")).status_code == 404


async def test_pages_need_a_session(console: ConsoleHarness):
    sid = await _session(console)
    anonymous = console.client()
    for url in ("/ai-sessions", f"/ai-sessions/{sid}"):
        r = await anonymous.get(url)
        assert r.status_code in (303, 401) and "Зов" not in r.text
