"""bulk: import jobs started from the API or the console

Revision ID: 0008_bulk
Revises: 0005_api
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import JSONDocument, UTCDateTime

revision = "0008_bulk"
down_revision = "0005_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("options", JSONDocument, nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes_read", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger()),
        sa.Column("summary", JSONDocument),
        sa.Column("error", sa.Text()),
        sa.Column("has_errors_file", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("heartbeat_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_bulk_jobs"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed')",
            name="ck_bulk_jobs_status",
        ),
        sa.CheckConstraint("kind IN ('import')", name="ck_bulk_jobs_kind"),
    )
    op.create_index(
        "ix_bulk_jobs_status_heartbeat_at", "bulk_jobs", ["status", "heartbeat_at"]
    )


def downgrade() -> None:
    op.drop_table("bulk_jobs")
