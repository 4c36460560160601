"""broadcasts: campaigns and their deliveries

Revision ID: 0003_broadcasts
Revises: 0002_segments
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import JSONDocument, UTCDateTime

revision = "0003_broadcasts"
down_revision = "0002_segments"
branch_labels = None
depends_on = None

BROADCAST_STATUSES = ("draft", "scheduled", "running", "paused", "finished", "cancelled", "failed")
DELIVERY_STATUSES = ("pending", "sending", "sent", "blocked", "failed", "unknown")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("media_kind", sa.String(8)),
        sa.Column("media", sa.Text()),
        sa.Column("buttons", JSONDocument, nullable=False),
        sa.Column("filter", sa.Text(), nullable=False),
        sa.Column("status", sa.String(9), nullable=False),
        sa.Column("options", JSONDocument, nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_by", sa.BigInteger()),
        sa.Column(
            "created_at", UTCDateTime(), server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.Column("scheduled_at", UTCDateTime()),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_broadcasts"),
        sa.CheckConstraint(
            "media_kind IS NULL OR media_kind IN ('photo', 'document')",
            name="ck_broadcasts_media_kind",
        ),
        sa.CheckConstraint(
            _in("status", BROADCAST_STATUSES), name="ck_broadcasts_broadcast_status"
        ),
    )
    op.create_index(
        "ix_broadcasts_status_scheduled_at", "broadcasts", ["status", "scheduled_at"]
    )
    op.create_table(
        "deliveries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
            nullable=False,
        ),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(7), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("message_id", sa.BigInteger()),
        sa.Column("error", sa.Text()),
        sa.Column("sent_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcasts.id"], ondelete="CASCADE",
            name="fk_deliveries_broadcast_id_broadcasts",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_deliveries_user_id_users"
        ),
        sa.UniqueConstraint("broadcast_id", "user_id", name="uq_deliveries_broadcast_id_user_id"),
        sa.CheckConstraint(_in("status", DELIVERY_STATUSES), name="ck_deliveries_delivery_status"),
    )
    op.create_index(
        "ix_deliveries_broadcast_id_status_id", "deliveries", ["broadcast_id", "status", "id"]
    )
    op.create_index("ix_deliveries_broadcast_id_sent_at", "deliveries", ["broadcast_id", "sent_at"])
    op.create_index("ix_deliveries_user_id", "deliveries", ["user_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("broadcasts")
