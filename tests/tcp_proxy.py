"""A test-only TCP proxy that can cut every connection, like a database failover does.

``async with TcpProxy("127.0.0.1", 5432) as proxy`` listens on a free loopback port and forwards
each connection to the target. ``proxy.cut()`` drops every open connection and refuses new ones
(they are accepted and closed at once, so clients fail fast instead of hanging) until
``proxy.restore()``; ``await proxy.outage(seconds)`` does both.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.down = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._drop_all()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every connection (a reset, as when the server vanishes) and refuse new ones."""
        self.down = True
        self.cuts += 1
        self._drop_all()

    def restore(self) -> None:
        self.down = False

    async def outage(self, seconds: float) -> None:
        self.cut()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.restore()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        if self.down:  # cut while connecting
            _reset(writer)
            _reset(up_writer)
            return
        self._writers.update((writer, up_writer))
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._links.discard(task)
            for w in (writer, up_writer):
                self._writers.discard(w)
                _reset(w)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a polite FIN: the peer's next read fails."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError, RuntimeError):
        writer.transport.abort()
