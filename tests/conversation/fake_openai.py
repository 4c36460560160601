"""A local OpenAI-compatible HTTP server for tests, so the real ``openai`` client runs.

Implements ``POST /v1/chat/completions``, records every request, and answers from a script:
``server.script(...)`` queues behaviours (a reply text, a delay, an HTTP status, an empty or
invalid body); with nothing queued, ``server.responder(request_json)`` builds the answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Behaviour:
    text: str | None = "ok"
    delay: float = 0.0
    status: int = 200
    empty: bool = False
    invalid: bool = False


def default_responder(body: dict[str, Any]) -> str:
    last = body["messages"][-1]["content"]
    return f"Ответ на: {last}"


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.queue: deque[Behaviour] = deque()
        self.responder: Callable[[dict[str, Any]], str] = default_responder
        self.delay = 0.0
        #: when set, every answer waits for this event (hold calls in flight, no timing)
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.generation = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        self.queue.extend(behaviours)

    def reset(self) -> None:
        self.requests.clear()
        self.queue.clear()
        self.responder = default_responder
        self.delay = 0.0
        self.gate = None
        self.max_in_flight = 0
        self.in_flight = 0
        self.generation += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        b = self.queue.popleft() if self.queue else Behaviour(text=None, delay=self.delay)
        generation = self.generation  # requests left over from an earlier test don't count
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if b.delay:
                await asyncio.sleep(b.delay)
            if self.gate is not None:
                await self.gate.wait()
            if b.status != 200:
                return web.json_response(
                    {"error": {"message": "scripted failure", "type": "server_error"}},
                    status=b.status,
                )
            if b.invalid:
                return web.Response(text="<html>not json</html>", content_type="text/html")
            text = b.text if b.text is not None else self.responder(body)
            content = "" if b.empty else text
            return web.json_response(
                {
                    "id": f"chatcmpl-{len(self.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        finally:
            if generation == self.generation:
                self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


def prompt_text(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"], ensure_ascii=False)
