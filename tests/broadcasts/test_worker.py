"""`relove worker` stays small: it sends with the lean client and imports no aiogram."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_loads_no_aiogram() -> None:
    """Importing aiogram would cost the worker ~120 MB of resident memory."""
    code = (
        "import sys, relove.cli, relove.bot.texts, relove.telegram.client, "
        "relove.telegram.ratelimit, relove.telegram.ratelimit.redis, relove.broadcasts.telegram, "
        "relove.broadcasts.notify, relove.broadcasts.runner; "
        "print(sorted(m for m in ('aiogram', 'openai', 'pymorphy3', 'alembic') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
