from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conversation.fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
async def _fake_openai_server() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def fake_openai(_fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    """A running OpenAI-compatible server, its script and records reset for each test."""
    _fake_openai_server.reset()
    return _fake_openai_server
