"""A small HTTP server for ``/healthz``, ``/readyz`` and ``/metrics`` in processes that serve no
HTTP of their own: `relove run` (polling) and `relove worker`, at ``RELOVE_METRICS_LISTEN``.

It runs on the process's event loop (asyncio streams, HTTP/1.0, one request per connection),
so it needs no framework, no thread, and never touches the process's signal handling. Requests
are bounded: 8 KiB of head, 5 s to send it, GET only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from relove.ops.endpoints import Answer, Endpoints

log = logging.getLogger(__name__)

MAX_HEAD = 8192
READ_TIMEOUT = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 503: "Service Unavailable"}  # fmt: skip


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9100`` for IPv6) as a pair."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ProbeServer:
    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEAD)
        log.info("health and metrics on http://%s:%s/ (/healthz, /readyz, /metrics)",
                 host, self.port)  # fmt: skip

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self._answer(reader)
            head = (f"HTTP/1.0 {answer.status} {_REASONS.get(answer.status, '')}\r\n"
                    f"Content-Type: {answer.content_type}\r\n"
                    f"Content-Length: {len(answer.body)}\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n")  # fmt: skip
            writer.write(head.encode("latin-1") + answer.body)
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        except Exception:  # never let a probe take the process down
            log.exception("health/metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Answer:
        bad = Answer(400, "text/plain", b"bad request\n")
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return bad
        if len(head) > MAX_HEAD:
            return bad
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return bad
        if parts[0] not in ("GET", "HEAD"):
            return Answer(405, "text/plain", b"GET only\n")
        authorization = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "authorization":
                authorization = value.strip()
        path = parts[1].partition("?")[0]
        return await self.endpoints.answer(path, authorization)


@contextlib.asynccontextmanager
async def serving_probes(listen: str | None, endpoints: Endpoints) -> AsyncIterator[
        ProbeServer | None]:
    """Serve the endpoints at ``listen`` (``host:port``) for the block; nothing when None."""
    if not listen:
        yield None
        return
    server = ProbeServer(endpoints)
    host, port = split_listen(listen)
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.close()
