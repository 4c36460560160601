"""kill -9 of the real `relove worker` mid-sequence, then a new worker: no message is sent
twice, no step is skipped (a send in flight at the kill is recorded `unknown`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import func, select

from relove.automations.models import AutomationCursor
from relove.sandbox.core import DEFAULT_TOKEN
from tests.automations.conftest import events, new_users, runs
from tests.sandbox_fixtures import eventually

N = 24
FLOW = """
automations:
  - id: pair
    trigger: {event: user.created}
    steps:
      - {id: first, send: "Первое"}
      - {id: pause, wait: 1s}
      - {id: second, send: "Второе"}
"""


async def _worker(database_url: str, sandbox_url: str, path: Path
                  ) -> asyncio.subprocess.Process:  # fmt: skip
    env = dict(os.environ, RELOVE_DATABASE_URL=database_url, RELOVE_BOT_TOKEN=DEFAULT_TOKEN,
               RELOVE_TELEGRAM_API_URL=sandbox_url, RELOVE_AUTOMATIONS_FILE=str(path),
               RELOVE_AUTOMATIONS_RATE="25", RELOVE_TELEGRAM_RATE_LIMIT="50",
               RELOVE_AUTOMATIONS_LEASE_SECONDS="2", RELOVE_AUTOMATIONS_POLL_SECONDS="0.1",
               RELOVE_AUTOMATIONS_EVENT_LAG_SECONDS="0.2", RELOVE_LOG_LEVEL="WARNING")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relove", "worker", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_kill_9_mid_sequence(db, database_url, sandbox, sandbox_client, tmp_path) -> None:
    assert sandbox.url
    path = tmp_path / "automations.yaml"
    path.write_text(FLOW)
    first = await _worker(database_url, sandbox.url, path)
    try:
        async def cursor_ready() -> bool:
            async with db.connect() as conn:
                return bool(await conn.scalar(
                    select(func.count()).select_from(AutomationCursor)))

        await eventually(cursor_ready, timeout=30)
        await new_users(db, sandbox_client, list(range(800, 800 + N)))

        async def some_sent() -> bool:
            return (await sandbox_client.stats())["messages"] >= N // 2

        await eventually(some_sent, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert (await sandbox_client.stats())["messages"] < 2 * N  # killed mid-sequence
    second = await _worker(database_url, sandbox.url, path)
    try:
        async def all_done() -> bool:
            found = await runs(db)
            return len(found) == N and all(r.status == "completed" for r in found)

        await eventually(all_done, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()
    steps = [(e.user_id, e.props["step"], e.props.get("outcome"))
             for e in await events(db, "automation.step")]  # fmt: skip
    for uid in range(800, 800 + N):
        texts = [m["text"] for m in await sandbox_client.messages(uid, from_bot=True)]
        mine = [s for s in steps if s[0] == uid]
        # every step ran exactly once: its outcome recorded once, never a second try
        assert sorted(s[1] for s in mine) == ["first", "pause", "second"], mine
        for step, text in (("first", "Первое"), ("second", "Второе")):
            [outcome] = [s[2] for s in mine if s[1] == step]
            assert texts.count(text) == (1 if outcome == "sent" else texts.count(text))
            assert texts.count(text) <= 1
            assert outcome in ("sent", "unknown")
