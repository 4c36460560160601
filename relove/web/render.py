"""Server-rendered pages and htmx fragments (a template block rendered alone, jinja2-fragments).

Every value is escaped (``autoescape=True``); templates never mark user data safe. Dates are
shown in UTC. Static files get a content hash in their URL (vendored files carry their version
in the name)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2_fragments import render_block

from relove.web.vendor import asset_names

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
MAX_VALUE_CHARS = 200


def _datetime(value: datetime | date | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime(fmt)
    return value.isoformat()


def compact(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A stored value as one line of text (lists joined, objects as JSON), clipped."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def kind_of(value: Any) -> str:
    """The type a marker value has, as the segment language names it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return "object"


def _static_version(name: str) -> str:
    path = STATIC_DIR / name
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.exists() else "0"


class Renderer:
    def __init__(self, extra_dirs: Sequence[Path] = ()) -> None:
        self.env = Environment(
            loader=FileSystemLoader([TEMPLATES_DIR, *extra_dirs]),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(dt=_datetime, compact=compact, json_text=json_text, kind=kind_of)
        self.env.tests["match_name"] = lambda v: isinstance(v, str) and v.isidentifier()
        vendor = {k: f"/static/vendor/{v}" for k, v in asset_names().items()}
        own = {name.split(".")[0] + "_" + name.split(".")[1]: f"/static/{name}?v="
               + _static_version(name) for name in ("console.css", "console.js")}
        self.env.globals["assets"] = {**vendor, **own}

    def render(self, name: str, context: Mapping[str, Any], *, block: str | None = None) -> str:
        if block is not None:
            return render_block(self.env, name, block, dict(context))
        return self.env.get_template(name).render(dict(context))

    def response(
        self, name: str, context: Mapping[str, Any], *, block: str | None = None,
        status: int = 200, headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        return HTMLResponse(self.render(name, context, block=block), status_code=status,
                            headers=dict(headers or {}))
