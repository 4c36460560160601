"""Writing a batch of validated rows: the modes, the counts, and the store interface.

A store writes one batch inside the caller's transaction with set-based statements whose JSON
merge runs in the database (``||`` / ``jsonb_set`` on PostgreSQL, ``json_patch`` /
``json_set`` on SQLite) against the row as it is when the statement locks it, so a
concurrent writer (a touch, the marker service) never loses a key. Rows whose values would not
change are not written at all: re-importing a file changes 0 rows and no ``updated_at``.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from relove.bulk.columns import IDENTITY_FIELDS
from relove.bulk.rows import DocChange, ImportRow


class ImportMode(enum.StrEnum):
    """What an import may do to a user."""

    #: new users only; rows of existing users are skipped
    create = "create"
    #: create new users; set the given fields and keys of existing ones, keep the rest
    merge = "merge"
    #: like merge, but a document the row gives replaces the user's whole document
    overwrite = "overwrite"
    #: existing users only, their markers only (merged); other columns are ignored
    markers_only = "markers-only"

    @property
    def creates(self) -> bool:
        return self is not ImportMode.markers_only

    @property
    def updates(self) -> bool:
        return self is not ImportMode.create


@dataclass(slots=True)
class BatchCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class BatchShape:
    """What a batch writes, so each statement names only the columns it needs."""

    identity: bool
    markers: bool
    markers_ops: bool
    context: bool
    context_ops: bool

    @classmethod
    def of(cls, rows: list[ImportRow], *, steps: Callable[[DocChange], bool]) -> BatchShape:
        """``steps`` says whether a document change needs steps after its plain merge."""
        return cls(
            identity=any(r.given for r in rows),
            markers=any(r.markers is not None for r in rows),
            markers_ops=any(r.markers is not None and steps(r.markers) for r in rows),
            context=any(r.context is not None for r in rows),
            context_ops=any(r.context is not None and steps(r.context) for r in rows),
        )

    def has(self, doc: str) -> bool:
        return self.markers if doc == "markers" else self.context

    def has_ops(self, doc: str) -> bool:
        return self.markers_ops if doc == "markers" else self.context_ops


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def for_mode(row: ImportRow, mode: ImportMode) -> ImportRow:
    """``markers-only`` writes markers only: the row without its other fields."""
    if mode is ImportMode.markers_only and (row.given or row.context is not None):
        return ImportRow(row.line, row.id, markers=row.markers)
    return row


def deep_ops(change: DocChange) -> list[tuple[tuple[str, ...], bool, Any]]:
    """The dotted paths as ``(path, ensure_object, value)`` steps: each intermediate made an
    object (kept when it is one), then the value set."""
    ops: list[tuple[tuple[str, ...], bool, Any]] = []
    for path, value in change.deep:
        for i in range(1, len(path)):
            ops.append((path[:i], True, None))
        ops.append((path, False, value))
    return ops


class BatchStore(ABC):
    """Writes batches for one import (one mode, one database)."""

    IDENTITY = IDENTITY_FIELDS

    def __init__(self, mode: ImportMode) -> None:
        self.mode = mode

    async def prepare(self, conn: AsyncConnection) -> None:  # noqa: B027 - optional hook
        """Once per import, outside the batches' transactions."""

    @abstractmethod
    async def apply(
        self, conn: AsyncConnection, rows: list[ImportRow], now: datetime
    ) -> BatchCounts:
        """Write ``rows`` (unique ids) in the caller's transaction; count what happened."""
