"""The Bot API's error answers, as the sandbox raises them (answered by :mod:`botapi`)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code", "description", "parameters"}``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def bad_request(what: str) -> ApiError:
    """A 400 with the official server's wording after ``Bad Request: ``."""
    return ApiError(400, f"Bad Request: {what}")
