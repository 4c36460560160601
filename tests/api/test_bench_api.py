"""The reduced variant of bench/api.py: its load scenarios, over real HTTP to the app served by
uvicorn on a free port, against a small database (both DBs). Asserts only that every request
succeeds — the figures are the benchmark's."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from sqlalchemy import insert

from bench.api import _load_run
from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.db.models import User
from tests.api.conftest import api_settings
from tests.sandbox_fixtures import eventually

USERS = 1200
BATCH = 50
DEADLINE_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_bench_scenarios_succeed_over_http(db, session_factory, make_token,
                                                 database_url) -> None:  # fmt: skip
    async with session_factory.begin() as s:
        await s.execute(insert(User), [{"id": i, "first_name": f"u{i}", "markers": {"n": 0}}
                                       for i in range(1, USERS + 1)])  # fmt: skip
    app = create_app(api_settings(database_url), db, session_factory, limiter=MemoryRateLimiter())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))  # fmt: skip
    serving = asyncio.create_task(server.serve())
    try:
        async def started() -> bool:
            assert not serving.done(), "uvicorn stopped"
            return bool(server.started)

        await eventually(started, timeout=DEADLINE_S)
        token = await make_token("admin")
        base = f"http://127.0.0.1:{port}"
        for kind in ("get", "patch", "list1", "list900k", "batch", "batchset"):
            run = _load_run(base, token, kind, 0.2, USERS, BATCH)
            result = await asyncio.wait_for(run, DEADLINE_S)
            assert result["requests"] > 0 and result["errors"] == 0, result
            assert result["ops"] == result["requests"] * (BATCH if kind.startswith("batch") else 1)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, DEADLINE_S)
