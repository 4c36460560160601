"""Dotted key paths into the ``markers`` / ``context`` documents, and their rules."""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any, Literal

from relove.errors import InvalidInput, InvalidKey

Document = Literal["markers", "context"]
DOCUMENTS: tuple[Document, ...] = ("markers", "context")

MAX_KEY_LENGTH = 64
MAX_DEPTH = 8
_FORBIDDEN = {'"', "\\"}
#: Whole numbers both databases store and compare exactly (a signed 64-bit integer).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Objects and lists nest at most this deep inside one stored value (docs/markers.md, Limits).
MAX_NESTING = 32


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or compared alike on both databases, else ``None``.

    PostgreSQL refuses NUL in text and JSON while SQLite keeps it; a lone surrogate
    (``"\\ud800"``) is not encodable as UTF-8 at all. Both are refused everywhere, the same way.
    """
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"contains a lone surrogate (\\u{ord(text[e.start]):04x})"
    return None


def int64_problem(value: int) -> str | None:
    """Why a whole number is out of the signed 64-bit range both databases share, else ``None``."""
    if INT64_MIN <= value <= INT64_MAX:
        return None
    return "is outside the signed 64-bit range (-2^63 … 2^63-1)"


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid marker/context key, else raise :class:`InvalidKey`."""
    if not key or not key.strip():
        raise InvalidKey("a key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key {key[:20]!r}… is longer than {MAX_KEY_LENGTH} characters")
    if key.isdecimal():
        # PostgreSQL reads an all-digit path step as a list position, SQLite as a key.
        raise InvalidKey(f"key {key!r} is all digits; use a name (e.g. y{key})")
    for ch in key:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in _FORBIDDEN:
            raise InvalidKey(f"key {key!r} contains a forbidden character {ch!r}")
    return key


def parse_path(path: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"profile.city"`` → ``("profile", "city")``; every part checked with :func:`check_key`."""
    if isinstance(path, str):
        known = _PATHS.get(path)
        if known is not None:
            return known
        parts = tuple(path.split("."))
    else:
        parts = tuple(path)
    if not parts:
        raise InvalidKey("a key must not be empty")
    if len(parts) > MAX_DEPTH:
        raise InvalidKey(f"path {'.'.join(parts)!r} is deeper than {MAX_DEPTH} levels")
    for part in parts:
        check_key(part)
    if isinstance(path, str):
        if len(_PATHS) >= _PATHS_MAX:
            _PATHS.clear()
        _PATHS[path] = parts
    return parts


#: valid paths by their text: a batch of 1,000 items names the same few keys 1,000 times (a
#: plain dict, not functools.lru_cache: no extra frames on the stack of a deep filter's parse)
_PATHS: dict[str, tuple[str, ...]] = {}
_PATHS_MAX = 4096


def check_document(doc: str) -> Document:
    if doc not in DOCUMENTS:
        raise InvalidInput(f"unknown document {doc!r}; expected markers or context")
    return doc


def check_user_id(user_id: Any) -> int:
    """``user_id`` if it is a whole number both databases can hold, else :class:`InvalidInput`."""
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise InvalidInput(f"a user id must be a whole number, got {_short(user_id)}")
    problem = int64_problem(user_id)
    if problem:
        raise InvalidInput(f"user id {user_id} {problem}")
    return user_id


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 60 else text[:59] + "…"


def check_value(value: Any) -> Any:
    """``value`` if both databases store and read it back alike, else ONE line of
    :class:`InvalidInput`: JSON types only, objects and lists at most :data:`MAX_NESTING` deep,
    text keys, whole numbers in the signed 64-bit range, finite numbers, and no NUL or lone
    surrogate in any string or key. Walked without recursion, so any depth is refused safely."""
    kind = type(value)
    if (  # the common scalars, without the walk
        value is None or kind is bool
        or (kind is int and INT64_MIN <= value <= INT64_MAX)
        or (kind is str and value.isascii() and "\x00" not in value)
    ):  # fmt: skip
        return value
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_NESTING:
                raise InvalidInput(f"the value nests objects and lists deeper than {MAX_NESTING} "
                                   "levels")  # fmt: skip
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        raise InvalidInput(f"object keys must be text, got {_short(key)}")
                    problem = text_problem(key)
                    if problem:
                        raise InvalidInput(f"the key {_short(key)} {problem}")
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise InvalidInput(f"the text {_short(item)} {problem}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            problem = int64_problem(item)
            if problem:
                raise InvalidInput(f"the number {item} {problem}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"the number {item} is not finite")
        else:
            raise InvalidInput(f"{_short(item)} cannot be stored as JSON")
    return value


def to_json(value: Any) -> str:
    """``value`` checked by :func:`check_value`, as compact JSON text."""
    check_value(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def parse_cli_value(raw: str) -> Any:
    """A value typed by a person: JSON when it parses (``42``, ``true``, ``["a"]``), else text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_assignment(item: str) -> tuple[str, Any]:
    """``"city=Москва"`` → ``("city", "Москва")``; ``"vip=true"`` → ``("vip", True)``."""
    key, sep, raw = item.partition("=")
    if not sep:
        raise InvalidInput(f"expected key=value, got {item!r}")
    key = key.strip()
    parse_path(key)
    return key, parse_cli_value(raw)


def get_path(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a plain dict, or ``None`` when missing."""
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc
