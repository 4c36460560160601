"""`relove demo`: the seeded data, and the command itself end to end."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import User
from relove.db.types import utcnow
from relove.sandbox.client import SandboxClient
from relove.sandbox.core import Sandbox
from relove.sandbox.demo import OPERATOR, add_to_sandbox, seed_database


async def test_seed_database_and_sandbox_users(db: AsyncEngine, sandbox: Sandbox) -> None:
    people = await seed_database(db, 300)
    async with db.connect() as conn:
        rows = (await conn.execute(select(User.__table__))).all()
        vip = (await conn.execute(select(func.count()).where(
            User.markers["VIP"].as_boolean().is_(True)))).scalar_one()
    assert len(rows) == 300
    now = utcnow()
    assert all(r.created_at < r.last_seen_at <= now for r in rows)
    assert min(r.last_seen_at for r in rows) >= now - timedelta(days=61)
    assert max(r.last_seen_at for r in rows) >= now - timedelta(days=3)
    assert 0 < vip < 60
    assert {r.markers["source"] for r in rows} >= {"instagram", "telegram_channel", "friend"}
    assert len({r.markers["city"] for r in rows}) >= 8
    assert {r.gender for r in rows} == {"male", "female", "unknown"}
    assert any(not r.is_active for r in rows)
    assert any(r.first_name.isascii() for r in rows)
    assert any(not r.first_name.isascii() for r in rows)

    add_to_sandbox(sandbox, people)
    users = sandbox.world.users
    assert OPERATOR["id"] in users and len(users) == 301
    active = next(p for p in people if p["is_active"])
    inactive = next(p for p in people if not p["is_active"])
    assert users[active["id"]].started and not users[active["id"]].blocked
    assert users[inactive["id"]].blocked


async def test_demo_command_serves_a_bot_to_chat_with(tmp_path: Path) -> None:
    env = {**os.environ, "RELOVE_LOG_LEVEL": "WARNING"}
    env.pop("RELOVE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from relove.cli import entry; entry()",
        "demo", "--port", "0", "--console-port", "0", "--users", "50",
        "--db", str(tmp_path / "demo.db"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        url = login = None
        assert proc.stdout is not None
        output = []
        while url is None or login is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "demo exited early:\n" + "".join(output)
            output.append(line)
            m = re.search(r"Web chat\s+(http://\S+)/", line)
            if m:
                url = m.group(1)
            m = re.search(r"Log in\s+(http://\S+/auth/link/\S+)", line)
            if m:
                login = m.group(1)
        async with httpx.AsyncClient() as browser:  # the printed link opens the console
            r = await browser.post(login, follow_redirects=True)
            assert r.status_code == 200 and 'action="/logout"' in r.text
        async with SandboxClient(url) as client:
            await client.wait_until_ready()
            reply = await client.ask(OPERATOR["id"], "/start", timeout=20)
            assert OPERATOR["first_name"] in reply["text"]
            assert len(await client.users()) == 51
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode in (0, 130)
