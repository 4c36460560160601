"""The sandbox fidelity check (bench/sandbox_fidelity.py) in the suite: every method of the
Bot API specification, the official server's wording for missing and invalid parameters, the
specification's result types, Telegram's text behaviour and python-telegram-bot polling — all
must pass. (The bench adds PTB's webhook mode, which needs a port number up front.)"""

from __future__ import annotations

from bench.sandbox_fidelity import run_checks


async def test_sandbox_answers_like_the_bot_api() -> None:
    checks = await run_checks(ptb=True, webhook=False)
    failures = [f"{c.group}: {c.name}: {c.detail}" for c in checks if not c.ok]
    assert failures == []
    groups = {c.group for c in checks}
    assert groups == {"methods", "required", "wording", "results", "behaviour", "ptb"}
    assert len(checks) > 290
