"""Logging set-up: readable lines by default, one JSON object per line with
``RELOVE_LOG_FORMAT=json``; both carry the context of the work at hand.

The context (``update_id``, ``user_id``, ``broadcast_id``) lives in a :mod:`contextvars`
variable, so it follows the asyncio task that handles an update or sends a broadcast (and the
tasks it starts) without being passed around::

    with log_context(update_id=update.update_id, user_id=user_id):
        await handle(update)            # every log line inside carries both

This module imports nothing of the product (the transport may use it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

#: the fields a log line may carry from its context, in this order
CONTEXT_FIELDS = ("update_id", "user_id", "broadcast_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("relove_log_context", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


def current_context() -> dict[str, Any]:
    """The fields in force here (a copy)."""
    return dict(_context.get() or {})


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``None`` values are left out) to every log line inside the block."""
    token = push_context(fields)
    try:
        yield
    finally:
        pop_context(token)


def push_context(fields: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """:func:`log_context` without the context manager (hot paths): add ``fields`` (``None``
    values are left out) until :func:`pop_context` with the token returned."""
    outer = _context.get()
    if None in fields.values():
        fields = {k: v for k, v in fields.items() if v is not None}
    return _context.set({**outer, **fields} if outer else dict(fields))


def pop_context(token: Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the context on each record: its fields as attributes, and ``record.context`` as
    `` [update_id=1 user_id=2]`` for the text format."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get() or {}
        for key in CONTEXT_FIELDS:
            if not hasattr(record, key):
                setattr(record, key, fields.get(key))
        shown = [f"{k}={fields[k]}" for k in CONTEXT_FIELDS if fields.get(k) is not None]
        record.context = f" [{' '.join(shown)}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    the context fields that are set, and ``exc`` (the traceback) when there is one. Values
    are data: the message is JSON-escaped, never interpreted."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Set up the root logger for a process: one stderr handler, ``text`` or ``json``. Like
    :func:`logging.basicConfig`, it leaves a root logger that already has handlers alone (an
    embedding application's or pytest's)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


__all__ = ["CONTEXT_FIELDS", "ContextFilter", "JsonFormatter", "configure_logging",
           "current_context", "log_context", "pop_context", "push_context"]
