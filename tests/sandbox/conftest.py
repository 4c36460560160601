"""Helpers of the sandbox tests: aiogram against the sandbox, and raw Bot API calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from relove.sandbox.core import DEFAULT_TOKEN, Sandbox

RawCall = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def plain_bot(sandbox: Sandbox) -> AsyncIterator[Bot]:
    """aiogram's Bot on the sandbox, with no default parse mode."""
    assert sandbox.url
    b = Bot(DEFAULT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    yield b
    await b.session.close()


@pytest.fixture
async def raw(sandbox: Sandbox) -> AsyncIterator[RawCall]:
    """``await raw("sendMessage", chat_id=1, text="x")``: the Bot API's JSON answer, as a
    program sees it (form-encoded POST; ``_json=True`` sends a JSON body)."""
    async with aiohttp.ClientSession() as http:

        async def call(method: str, _json: bool = False, **params: Any) -> dict[str, Any]:
            url = f"{sandbox.url}/bot{DEFAULT_TOKEN}/{method}"
            if _json:
                async with http.post(url, json=params) as r:
                    return await r.json()
            form = {k: str(v) for k, v in params.items()}
            async with http.post(url, data=form) as r:
                return await r.json()

        yield call
