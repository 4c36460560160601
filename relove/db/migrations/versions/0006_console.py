"""console: admins and roles, server-side sessions, one-time login tokens, tracked links

Revision ID: 0006_console
Revises: 0008_bulk
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import UTCDateTime

revision = "0006_console"
down_revision = "0008_bulk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admins",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("note", sa.String(200)),
        sa.Column(
            "created_at", UTCDateTime(), server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.Column("created_by", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_admins"),
        sa.CheckConstraint(
            "role IN ('viewer', 'operator', 'owner')", name="ck_admins_admin_role"
        ),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_admin_id", "console_sessions", ["admin_id"])
    op.create_table(
        "login_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_login_tokens"),
    )
    op.create_index("ix_login_tokens_expires_at", "login_tokens", ["expires_at"])
    op.create_table(
        "tracked_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tracked_links"),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcasts.id"], ondelete="CASCADE",
            name="fk_tracked_links_broadcast_id_broadcasts",
        ),
    )
    op.create_index("ix_tracked_links_broadcast_id", "tracked_links", ["broadcast_id"])
    # The console's log page: console events newest first (a small partial index; on
    # PostgreSQL it is created on every partition, present and future).
    op.execute("CREATE INDEX ix_events_console_at ON events (at DESC, id DESC) "
               "WHERE source = 'console'")


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_console_at")
    op.drop_table("tracked_links")
    op.drop_table("login_tokens")
    op.drop_table("console_sessions")
    op.drop_table("admins")
