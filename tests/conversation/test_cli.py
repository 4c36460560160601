"""`relove conversation check / ask`: one line and a non-zero exit on errors."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conversation.fake_openai import Behaviour, FakeOpenAI

EXAMPLES = Path(__file__).parents[2] / "relove" / "conversation" / "examples"


async def relove(*args: str, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELOVE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from relove.cli import entry; entry()", *args,
        env={**clean, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_check_lists_flows_and_items(tmp_path):
    code, out, err = await relove(
        "conversation", "check", "--scenarios", str(EXAMPLES / "scenarios.yaml"),
        "--catalog", str(EXAMPLES / "catalog.yaml"), RELOVE_DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
    )
    assert code == 0, err
    assert "flow onboarding: 3 steps" in out and "catalog: 7 items" in out


async def test_check_refuses_a_broken_file_with_line(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("flows:\n  - id: a\n    steps:\n      - {id: s, text: t, marker: ''}\n")
    code, out, err = await relove("conversation", "check", "--scenarios", str(bad))
    assert code == 1
    assert err.strip().splitlines() == [f"error: {bad}:4: flows.0.steps.0.marker: "
                                        "a key must not be empty"]
    assert "Traceback" not in err


async def test_ask_talks_to_the_configured_model(fake_openai: FakeOpenAI):
    fake_openai.script(Behaviour(text="Привет от модели"))
    code, out, err = await relove(
        "conversation", "ask", "Привет", RELOVE_LLM_BASE_URL=fake_openai.base_url,
        RELOVE_LLM_MODEL="m",
    )
    assert code == 0, err
    assert out.strip() == "Привет от модели"
    assert fake_openai.requests[-1]["messages"][-1]["content"] == "Привет"
    fake_openai.script(Behaviour(status=500))
    code, out, err = await relove(
        "conversation", "ask", "x", RELOVE_LLM_BASE_URL=fake_openai.base_url,
        RELOVE_LLM_MODEL="m", RELOVE_LLM_RETRIES="0",
    )
    assert code == 1 and "HTTP 500" in err
