"""Where rejected rows go: ``FILE.errors.csv`` — ``line``, ``reason``, then the row as read.

The file is written in the input's encoding (with a BOM when the input had one), so it opens
the way the input did; it is created on the first rejected row only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Protocol


class ErrorSink(Protocol):
    def add(self, line: int, reason: str, raw: list[str]) -> None: ...


class ErrorsFile:
    """A CSV errors file, opened lazily; use as a context manager (or call :meth:`close`)."""

    def __init__(
        self, path: str | Path, columns: list[str], *, encoding: str = "utf-8", bom: bool = False
    ) -> None:
        self.path = Path(path)
        self.columns = columns
        self.encoding = "utf-8-sig" if bom and encoding == "utf-8" else encoding
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: csv._writer | None = None  # type: ignore[name-defined]

    @staticmethod
    def path_for(input_path: str | Path) -> Path:
        p = Path(input_path)
        return p.with_name(p.name + ".errors.csv")

    def add(self, line: int, reason: str, raw: list[str]) -> None:
        if self._writer is None:
            self._file = self.path.open(
                "w", encoding=self.encoding, errors="surrogateescape", newline=""
            )
            self._writer = csv.writer(self._file)
            self._writer.writerow(["line", "reason", *self.columns])
        self._writer.writerow([line, reason, *raw])
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ErrorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
