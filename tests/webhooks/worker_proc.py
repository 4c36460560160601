"""A webhook worker in its own process (the kill -9 test): ``python -m tests.webhooks.worker_proc
DATABASE_URL``."""

from __future__ import annotations

import asyncio
import sys

from relove.config import Settings
from relove.db.engine import create_engine
from relove.webhooks.worker import WebhookWorker


async def main(url: str) -> None:
    settings = Settings(database_url=url, webhooks_allow_private=True, webhooks_timeout=10.0,
                        webhooks_poll_seconds=0.05, webhooks_concurrency=4,
                        _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(url)
    await WebhookWorker(engine, settings).run_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
