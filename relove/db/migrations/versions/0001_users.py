"""users: one flexible User with markers and context

Revision ID: 0001_users
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.models import CONTEXT_MAX_BYTES, MARKERS_MAX_BYTES
from relove.db.types import JSONDocument, UTCDateTime

revision = "0001_users"
down_revision = None
branch_labels = None
depends_on = None


def _size_check(column: str, limit: int) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"octet_length({column}::text) <= {limit}"
    return f"length(CAST({column} AS BLOB)) <= {limit}"


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(64)),
        sa.Column("first_name", sa.String(256)),
        sa.Column("last_name", sa.String(256)),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("gender", sa.String(7), server_default="unknown", nullable=False),
        sa.Column("context", JSONDocument, server_default="{}", nullable=False),
        sa.Column("markers", JSONDocument, server_default="{}", nullable=False),
        sa.Column(
            "created_at", UTCDateTime(), server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.Column(
            "updated_at", UTCDateTime(), server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.Column("last_seen_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.CheckConstraint("gender IN ('male', 'female', 'unknown')", name="ck_users_gender"),
        sa.CheckConstraint(_size_check("markers", MARKERS_MAX_BYTES), name="ck_users_markers_size"),
        sa.CheckConstraint(_size_check("context", CONTEXT_MAX_BYTES), name="ck_users_context_size"),
    )
    op.create_index("ix_users_last_seen_at", "users", ["last_seen_at"])
    op.create_index("ix_users_created_at", "users", ["created_at"])
    if is_pg:
        op.create_index(
            "ix_users_markers_gin",
            "users",
            ["markers"],
            postgresql_using="gin",
            postgresql_ops={"markers": "jsonb_path_ops"},
        )


def downgrade() -> None:
    op.drop_table("users")
