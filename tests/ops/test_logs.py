"""RELOVE_LOG_FORMAT=json: one JSON object per line, carrying the context of the work at hand
(update, user, broadcast) — also into tasks started inside it."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from relove.ops.logs import ContextFilter, JsonFormatter, log_context


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"relove.test.logs.{id(out)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, out


async def test_json_lines_carry_the_context() -> None:
    log, out = _capture(JsonFormatter())
    log.info("outside")
    with log_context(update_id=7, user_id=42):
        log.warning("user wrote <b>%s</b>", 'a "quote"\nand a newline')

        async def in_a_task() -> None:
            with log_context(broadcast_id=3):
                log.info("in a task")

        await asyncio.create_task(in_a_task())
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # the newline in the data stays inside its JSON string
    outside, inside, task, failed = (json.loads(ln) for ln in lines)
    assert outside["message"] == "outside" and "update_id" not in outside
    assert inside == {**inside, "level": "WARNING", "update_id": 7, "user_id": 42,
                      "message": 'user wrote <b>a "quote"\nand a newline</b>'}
    assert task["broadcast_id"] == 3 and task["user_id"] == 42
    assert failed["level"] == "ERROR" and "ValueError: boom" in failed["exc"]
    assert inside["ts"].endswith("+00:00")


def test_text_lines_name_the_context() -> None:
    log, out = _capture(logging.Formatter("%(levelname)s %(message)s%(context)s"))
    with log_context(update_id=1, user_id=None):
        log.info("hello")
    log.info("bare")
    assert out.getvalue().splitlines() == ["INFO hello [update_id=1]", "INFO bare"]
