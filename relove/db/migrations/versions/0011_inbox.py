"""inbox: the durable inbox of webhook updates and the per-user lanes being processed

Revision ID: 0011_inbox
Revises: 0010_automations
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import UTCDateTime

revision = "0011_inbox"
down_revision = "0009_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lane", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("touched_at", UTCDateTime()),
        sa.Column("processed_at", UTCDateTime()),
        sa.Column("outcome", sa.String(16)),
        sa.PrimaryKeyConstraint("update_id", name="pk_bot_inbox"),
    )
    op.create_index(
        "ix_bot_inbox_pending", "bot_inbox", ["lane", "update_id"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )  # fmt: skip
    op.create_index("ix_bot_inbox_processed_at", "bot_inbox", ["processed_at"])
    op.create_table(
        "bot_inbox_lanes",
        sa.Column("lane", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("lane", name="pk_bot_inbox_lanes"),
    )


def downgrade() -> None:
    op.drop_table("bot_inbox_lanes")
    op.drop_index("ix_bot_inbox_processed_at", table_name="bot_inbox")
    op.drop_index("ix_bot_inbox_pending", table_name="bot_inbox")
    op.drop_table("bot_inbox")
