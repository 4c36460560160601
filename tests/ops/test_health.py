"""/healthz, /readyz and /metrics: on `relove serve`'s app (over httpx's ASGI transport) and on
the small server of the bot and workers (over real TCP); readiness when the database is down,
the schema is behind, or Redis is unreachable."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.config import Settings
from relove.db.engine import create_engine, create_session_factory, normalise_url
from relove.ops import metrics
from relove.ops.endpoints import Endpoints
from relove.ops.health import Readiness
from relove.ops.server import ProbeServer
from tests.tcp_proxy import TcpProxy

REDIS_URL = os.environ.get("RELOVE_TEST_REDIS_URL")


def _settings(database_url: str, **overrides: object) -> Settings:
    return Settings(**{"database_url": database_url, "redis_url": None, "_env_file": None,
                       **overrides})  # type: ignore[arg-type]


def _app(engine: AsyncEngine, settings: Settings) -> FastAPI:
    return create_app(settings, engine, create_session_factory(engine),
                      limiter=MemoryRateLimiter())


@pytest.fixture
async def client_for() -> AsyncIterator[object]:
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        c = httpx.AsyncClient(transport=transport, base_url="http://relove.test")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


async def test_serve_is_alive_and_ready_on_a_current_database(
    db: AsyncEngine, database_url: str, client_for
) -> None:
    client = client_for(_app(db, _settings(database_url)))
    alive = await client.get("/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "schema": "ok"}}
    assert ready.headers["cache-control"] == "no-store"


async def test_not_ready_while_the_database_is_down(
    db: AsyncEngine, database_url: str, client_for, tmp_path: Path
) -> None:
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":  # a file that cannot be opened
        down = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'relove.db'}")
        app = _app(down, _settings(database_url))
        proxy = None
    else:  # PostgreSQL behind a proxy that cuts every connection
        proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).__aenter__()
        down = create_engine(url.set(host="127.0.0.1", port=proxy.port)
                             .render_as_string(hide_password=False))
        app = _app(down, _settings(database_url))
    client = client_for(app)
    try:
        if proxy is not None:
            assert (await client.get("/readyz")).status_code == 200
            proxy.cut()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and body["checks"]["database"] != "ok"
        assert "\n" not in body["checks"]["database"]
        assert (await client.get("/healthz")).status_code == 200  # alive all the same
        if proxy is not None:
            proxy.restore()
            assert (await client.get("/readyz")).status_code == 200  # and back
    finally:
        await down.dispose()
        if proxy is not None:
            await proxy.__aexit__(None, None, None)


async def test_not_ready_until_the_schema_is_upgraded(tmp_path: Path, client_for) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(url)
    try:
        ready = await client_for(_app(engine, _settings(url))).get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "ok"
        assert "relove db upgrade" in ready.json()["checks"]["schema"]
    finally:
        await engine.dispose()


async def test_redis_is_checked_when_configured(
    db: AsyncEngine, database_url: str, client_for
) -> None:
    app = _app(db, _settings(database_url, redis_url="redis://127.0.0.1:1/0"))
    ready = await client_for(app).get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["redis"] != "ok"
    if REDIS_URL:
        app = _app(db, _settings(database_url, redis_url=REDIS_URL))
        ready = await client_for(app).get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"


async def test_metrics_exposition_counts_requests(
    db: AsyncEngine, database_url: str, client_for
) -> None:
    client = client_for(_app(db, _settings(database_url)))
    before = metrics.API_REQUESTS.labels("GET", "200")._value.get()
    await client.get("/healthz")
    page = await client.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    for name in ("relove_updates_received_total", "relove_telegram_sends_total",
                 "relove_llm_calls_total", "relove_api_requests_total",
                 "relove_touch_batch_size_bucket"):
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in text, name
    line = next(ln for ln in text.splitlines()
                if ln.startswith('relove_api_requests_total{method="GET",status="200"}'))
    assert float(line.split()[-1]) >= before + 1


async def test_metrics_token_is_required_when_set(
    db: AsyncEngine, database_url: str, client_for
) -> None:
    client = client_for(_app(db, _settings(database_url, metrics_token="s3cret-metrics")))
    assert (await client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer s3cret-metrics"}
    assert (await client.get("/metrics", headers=right)).status_code == 200
    assert (await client.get("/healthz")).status_code == 200  # probes need no token


async def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_the_probe_server_of_bot_and_workers(
    db: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    server = ProbeServer(Endpoints(Readiness.for_process(db), metrics_token="t"))
    await server.start("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            assert (await http.get("/metrics")).status_code == 401
            page = await http.get("/metrics", headers={"Authorization": "Bearer t"})
            assert "relove_updates_processed_total" in page.text
            assert (await http.get("/nope")).status_code == 404
        assert (await _raw(server.port, b"POST /healthz HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await _raw(server.port, b"garbage\r\n\r\n"))[0] == 400
    finally:
        await server.close()


async def test_probes_answer_before_the_console_mounted_at_root(
    db: AsyncEngine, database_url: str, client_for
) -> None:
    from relove.web.app import console_mount

    settings = _settings(database_url)
    sessions = create_session_factory(db)
    app = create_app(settings, db, sessions, limiter=MemoryRateLimiter(),
                     mounts=[console_mount(settings, sessions)])
    client = client_for(app)
    for path in ("/healthz", "/readyz", "/metrics"):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert "text/html" not in r.headers["content-type"]  # not a console page


async def test_probes_on_an_aiohttp_server(db: AsyncEngine) -> None:
    from aiohttp import web

    from relove.ops.aiohttp_routes import add_probe_routes

    app = web.Application()
    add_probe_routes(app, Endpoints(Readiness.for_process(db)))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            assert (await http.get("/readyz")).json()["ready"] is True
            page = await http.get("/metrics")
            assert page.headers["content-type"].startswith("text/plain")
            assert "relove_updates_received_total" in page.text
    finally:
        await runner.cleanup()
