"""A mode's result: the JSON Schema the model is asked for, and the check of its answer.

The answer must be one JSON object (a Markdown code fence around it is tolerated); it is
checked field by field against the mode's declaration — types, enums, lengths, item counts —
and any problem is :class:`ResultInvalid` with a short reason the repair request quotes. There
is no guessing from free text.
"""

from __future__ import annotations

import json
import math
from typing import Any

from relove.conversation.ai_sessions.modes import RECOMMENDATIONS, AIMode, FieldSpec
from relove.errors import ReloveError
from relove.users.paths import int64_problem

REASON_MAX = 300


class ResultInvalid(ReloveError):
    """The model's answer is not a valid result (``str(e)`` says why, for the repair request)."""


def _field_schema(spec: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"type": spec.type}
    if spec.enum is not None:
        out["enum"] = list(spec.enum)
    if spec.description:
        out["description"] = spec.description
    for ours, theirs in (("min_length", "minLength"), ("max_length", "maxLength"),
                         ("minimum", "minimum"), ("maximum", "maximum"),
                         ("min_items", "minItems"), ("max_items", "maxItems")):  # fmt: skip
        value = getattr(spec, ours)
        if value is not None:
            out[theirs] = value
    if spec.items is not None:
        out["items"] = _field_schema(spec.items)
    return out


def json_schema(mode: AIMode, catalog_ids: list[str]) -> dict[str, Any]:
    """The whole result as a JSON Schema object (what the provider's structured output gets)."""
    props = {name: _field_schema(spec) for name, spec in mode.result.items()}
    required = [name for name, spec in mode.result.items() if spec.required]
    if mode.recommend is not None:
        item: dict[str, Any] = {
            "type": "object",
            "properties": {
                "id": {"type": "string", **({"enum": catalog_ids} if catalog_ids else {})},
                "reason": {"type": "string", "maxLength": REASON_MAX},
            },
            "required": ["id", "reason"],
            "additionalProperties": False,
        }
        props[RECOMMENDATIONS] = {"type": "array", "items": item, "maxItems": mode.recommend.max}
        required.append(RECOMMENDATIONS)
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def parse_json(text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):
        lines = body.splitlines()
        if len(lines) >= 2 and lines[-1].strip() == "```":
            body = "\n".join(lines[1:-1])
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise ResultInvalid(f"the answer is not valid JSON ({e.msg} at position {e.pos})") from None
    except ValueError as e:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise ResultInvalid(f"the answer is not valid JSON ({e})") from None


def _check(name: str, spec: FieldSpec, value: Any) -> Any:
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str):
            raise ResultInvalid(f"{name}: expected a string")
        value = value.strip()
        if spec.min_length is not None and len(value) < spec.min_length:
            raise ResultInvalid(f"{name}: shorter than {spec.min_length} characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ResultInvalid(f"{name}: longer than {spec.max_length} characters")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResultInvalid(f"{name}: expected an integer")
        _check_int(name, value)
    elif kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise ResultInvalid(f"{name}: expected a number")
        if isinstance(value, int):
            _check_int(name, value)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ResultInvalid(f"{name}: expected true or false")
    else:
        if not isinstance(value, list):
            raise ResultInvalid(f"{name}: expected an array")
        if spec.min_items is not None and len(value) < spec.min_items:
            raise ResultInvalid(f"{name}: fewer than {spec.min_items} items")
        if spec.max_items is not None and len(value) > spec.max_items:
            raise ResultInvalid(f"{name}: more than {spec.max_items} items")
        assert spec.items is not None
        return [_check(f"{name}[{i}]", spec.items, v) for i, v in enumerate(value)]
    if kind in ("integer", "number"):
        if spec.minimum is not None and value < spec.minimum:
            raise ResultInvalid(f"{name}: less than {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise ResultInvalid(f"{name}: more than {spec.maximum:g}")
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in spec.enum)
        raise ResultInvalid(f"{name}: {json.dumps(value, ensure_ascii=False)[:80]} is not one "
                            f"of the allowed values ({allowed})")  # fmt: skip
    return value


def _check_int(name: str, value: int) -> None:
    """A whole number both databases hold (math.isfinite of one past 1e308 raised
    OverflowError: a model's answer could crash the session)."""
    problem = int64_problem(value)
    if problem:
        raise ResultInvalid(f"{name}: {problem}")


def _recommendations(mode: AIMode, value: Any, catalog_ids: list[str]) -> list[dict[str, str]]:
    """Picks with a known catalog id (unknown ids are dropped, not an error)."""
    assert mode.recommend is not None
    if not isinstance(value, list):
        raise ResultInvalid(f"{RECOMMENDATIONS}: expected an array")
    out: list[dict[str, str]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ResultInvalid(f"{RECOMMENDATIONS}[{i}]: expected {{id, reason}}")
        reason = item.get("reason")
        reason = reason.strip()[:REASON_MAX] if isinstance(reason, str) else ""
        if item["id"] in catalog_ids and all(r["id"] != item["id"] for r in out):
            out.append({"id": item["id"], "reason": reason})
    return out[: mode.recommend.max]


def validate_result(mode: AIMode, text: str, catalog_ids: list[str]) -> tuple[dict[str, Any], int]:
    """The checked result and how many recommended ids were dropped (not in the catalog)."""
    data = parse_json(text)
    if not isinstance(data, dict):
        raise ResultInvalid("the answer must be a JSON object")
    out: dict[str, Any] = {}
    for name, spec in mode.result.items():
        if name not in data or data[name] is None:
            if spec.required:
                raise ResultInvalid(f"{name}: missing")
            continue
        out[name] = _check(name, spec, data[name])
    dropped = 0
    if mode.recommend is not None:
        raw = data.get(RECOMMENDATIONS, [])
        picks = _recommendations(mode, raw if raw is not None else [], catalog_ids)
        dropped = (len(raw) if isinstance(raw, list) else 0) - len(picks)
        out[RECOMMENDATIONS] = picks
    return out, max(dropped, 0)
