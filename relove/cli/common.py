"""Shared pieces of the CLI: settings, database access, output."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.config import Settings, load_settings
from relove.db.engine import create_engine, create_session_factory, is_sqlite
from relove.db.migrate import ensure_schema
from relove.ops.logs import configure_logging

if TYPE_CHECKING:
    from relove.ops.health import Check

T = TypeVar("T")

# Everything the CLI prints is text: names, filters, messages and errors come from users and
# operators, so the consoles never read Rich markup (``[/]`` would crash, ``[link=…]`` would put
# a link into the terminal) or emoji codes in what they print. Our own decoration goes through
# :func:`markup_line`; data in tables and lines goes through :func:`plain`.
console = Console(soft_wrap=True, markup=False, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

#: C0/C1 control characters but tab and newline: an ESC in a name could drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(value: object) -> str:
    text = "" if value is None else str(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def plain(value: object) -> Text:
    """A value as terminal text: never markup, control characters shown as ``\\x1b``."""
    return Text(_visible(value))


def markup_line(template: str, **data: object) -> Text:
    """Our markup with data inserted as text:
    ``markup_line("saved segment [bold]{name}[/bold]", name=name)``."""
    values = {key: escape(_visible(value)) for key, value in data.items()}
    return Text.from_markup(template.format(**values), emoji=False)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings() -> Settings:
    s = load_settings()
    configure_logging(s.log_level, s.log_format)
    if s.log_level != "DEBUG":
        for noisy in ("alembic", "aiogram.event"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return s


@asynccontextmanager
async def open_db(
    s: Settings, *, auto_upgrade: bool | None = None
) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    """Engine and session factory with the schema ensured (SQLite upgrades by itself)."""
    engine = create_engine(s.database_url)
    try:
        await ensure_schema(
            engine, auto_upgrade=is_sqlite(engine) if auto_upgrade is None else auto_upgrade
        )
        yield engine, create_session_factory(engine)
    finally:
        await engine.dispose()


def probes(
    s: Settings, engine: AsyncEngine, *, checks: dict[str, Check] | None = None,
    collectors: Sequence[Callable[[], Awaitable[object]]] = (),
) -> AbstractAsyncContextManager[object]:
    """/healthz, /readyz and /metrics at ``RELOVE_METRICS_LISTEN`` while the block runs (for
    `relove run` and `relove worker`; nothing when unset), with the process's own readiness
    ``checks`` and scrape-time gauge ``collectors``. See docs/operations.md."""
    from relove.ops.endpoints import Endpoints
    from relove.ops.health import Readiness
    from relove.ops.server import serving_probes

    token = s.metrics_token.get_secret_value() if s.metrics_token else None
    endpoints = Endpoints(Readiness.for_process(engine, s.redis_url, more=checks), token,
                          collectors)  # fmt: skip
    return serving_probes(s.metrics_listen, endpoints)


def cli_actor() -> str | None:
    """Who runs a command, for the history: ``cli:<OS user>`` (None when unknown)."""
    try:
        return f"cli:{getpass.getuser()}"[:200]
    except (OSError, KeyError):
        return None


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, ensure_ascii=False, default=str))
