"""Bot API call parameters from any of the wire formats: query string, JSON, urlencoded or
multipart (aiogram sends multipart with JSON-encoded complex values and ``attach://`` files)."""

from __future__ import annotations

import builtins
import json
import re
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from relove.sandbox.apierrors import bad_request

MAX_UPLOAD = 50 * 1024 * 1024


_LEADING_INT = re.compile(r"\s*([+-]?[0-9]+)")


def lenient_int(value: Any) -> int:
    """An integer read like tdlib's ``to_integer``: the leading digits, 0 when there are none."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        return 0
    m = _LEADING_INT.match(value)
    return int(m.group(1)) if m else 0


class Params:
    # Methods named after the builtins they return (``params.int("limit")``) shadow those
    # names in this class body, so annotations below spell ``builtins.*``.

    def __init__(self, values: dict[str, Any], files: dict[str, FileField] | None = None) -> None:
        self.values = values
        self.files = files or {}

    @classmethod
    async def read(cls, request: web.Request) -> Params:
        values: dict[str, Any] = dict(request.query)
        files: dict[str, FileField] = {}
        ctype = request.content_type
        if request.can_read_body:
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as e:
                    raise bad_request("can't parse JSON request body") from e
                if not isinstance(body, dict):
                    raise bad_request("request body must be a JSON object")
                values.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, FileField):
                        files[key] = value
                    else:
                        values[key] = value
        return cls(values, files)

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def str(self, name: str, *, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def int(
        self,
        name: builtins.str,
        *,
        required: builtins.bool = False,
        default: builtins.int | None = None,
    ) -> builtins.int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return default
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        try:
            return int(value)
        except (TypeError, ValueError) as e:
            raise bad_request(f"invalid {name} specified") from e

    def float(self, name: builtins.str, default: builtins.float) -> builtins.float:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise bad_request(f"invalid {name} specified") from e

    def bool(self, name: builtins.str) -> builtins.bool:
        value = self.values.get(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return bool(value)
        return isinstance(value, str) and value.strip().lower() in ("true", "1", "yes")

    def json(self, name: builtins.str, error: builtins.str | None = None) -> Any:
        """A JSON-serialised parameter (already decoded in a JSON body); ``error`` is the
        official description when it does not parse."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as e:
                raise bad_request(error or f"can't parse {name} JSON object") from e
        return value

    def raw(self, name: builtins.str) -> builtins.str:
        """A parameter as the official server reads it: text, "" when absent."""
        value = self.values.get(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    def message_id(self, name: builtins.str = "message_id") -> builtins.int:
        """A message id as the official server reads it: 0 when absent or not a number."""
        return max(lenient_int(self.values.get(name)), 0)

    def chat_id(self, name: builtins.str = "chat_id") -> builtins.int:
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def file(self, name: builtins.str) -> tuple[builtins.str | None, FileField | None]:
        """A file parameter: either a string (file_id / URL) or an uploaded file."""
        if name in self.files:
            return None, self.files[name]
        value = self.str(name)
        if value and value.startswith("attach://"):
            key = value[len("attach://"):]
            if key in self.files:
                return None, self.files[key]
            raise bad_request(f"can't find attached file \"{key}\"")
        return value, None
