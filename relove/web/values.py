"""Typed values from forms: the markers editor and bulk "set" say what type a value is."""

from __future__ import annotations

import json
import math
from typing import Any

from relove.errors import InvalidInput

KINDS = ("string", "number", "boolean", "list", "json")


def parse_typed(kind: str, raw: str) -> Any:
    """``raw`` as ``kind``: text as is, a number, true/false, a list (one item per line or
    comma-separated), or any JSON value."""
    if kind == "string":
        return raw
    if kind == "number":
        try:
            number = float(raw.strip().replace(",", "."))
        except ValueError:
            raise InvalidInput(f"{raw!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidInput(f"{raw!r} is not a finite number")
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "boolean":
        value = raw.strip().lower()
        if value in ("true", "1", "yes", "да", "on"):
            return True
        if value in ("false", "0", "no", "нет", "off", ""):
            return False
        raise InvalidInput(f"{raw!r} is not true or false")
    if kind == "list":
        parts = raw.splitlines() if "\n" in raw else raw.split(",")
        return [p.strip() for p in parts if p.strip()]
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError as e:
            raise InvalidInput(f"not valid JSON: {e}") from None
    raise InvalidInput(f"unknown value type {kind!r}")


def kind_for_value(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "list"
    return "json"


def raw_for_value(value: Any) -> str:
    """The form text that :func:`parse_typed` turns back into ``value``."""
    kind = kind_for_value(value)
    if kind == "string":
        return str(value)
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "list":
        return "\n".join(value)
    return json.dumps(value, ensure_ascii=False)
