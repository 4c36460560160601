"""``bulk_jobs``: imports started from the API or the console, with their progress.

An upload becomes a job (``queued``); a worker task runs it (``running``, progress written about
once a second) and leaves its summary and errors file (``completed``) or its error (``failed``).
Exports are not jobs: they stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from relove.db.models import Base
from relove.db.types import JSONDocument, UTCDateTime, utcnow

JOB_STATUSES = ("queued", "running", "completed", "failed")
FILE_NAME_MAX = 255


class BulkJob(Base):
    __tablename__ = "bulk_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False, default="import")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    #: the uploaded file's name as given (shown, never used as a path)
    file_name: Mapped[str] = mapped_column(String(FILE_NAME_MAX), nullable=False)
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    #: mode, dry_run, encoding, delimiter, types
    options: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False, default=dict)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    #: the final counts, the first rejections and (dry run) the first changes
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    error: Mapped[str | None] = mapped_column(Text)
    #: whether an errors file (rejected rows) was written
    has_errors_file: Mapped[bool] = mapped_column(default=False, nullable=False)
    actor: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: written with each progress update; a running job whose heartbeat stops was interrupted
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed')", name="status"
        ),
        CheckConstraint("kind IN ('import')", name="kind"),
        Index("ix_bulk_jobs_status_heartbeat_at", "status", "heartbeat_at"),
    )
