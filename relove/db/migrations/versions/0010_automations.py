"""automations: runs (durable timers), the events cursor, paused automations

Revision ID: 0010_automations
Revises: 0007_ai_sessions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import UTCDateTime

revision = "0010_automations"
down_revision = "0007_ai_sessions"
branch_labels = None
depends_on = None

_ACTIVE = "status IN ('waiting', 'sending')"


def upgrade() -> None:
    op.create_table(
        "automation_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("automation_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(200)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("due_at", UTCDateTime()),
        sa.Column("owner", sa.String(100)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("reason", sa.String(300)),
        sa.Column("sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("errors", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_automation_runs_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_automation_runs"),
    )
    op.create_index("ix_automation_runs_due", "automation_runs", ["due_at"],
                    postgresql_where=sa.text(_ACTIVE), sqlite_where=sa.text(_ACTIVE))
    op.create_index("ix_automation_runs_automation_user", "automation_runs",
                    ["automation_id", "user_id", "started_at"])
    op.create_index("uq_automation_runs_active", "automation_runs",
                    ["automation_id", "user_id"], unique=True,
                    postgresql_where=sa.text(_ACTIVE), sqlite_where=sa.text(_ACTIVE))
    op.create_index("ix_automation_runs_user", "automation_runs", ["user_id"])
    op.create_table(
        "automation_cursors",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_automation_cursors"),
    )
    op.create_table(
        "automation_states",
        sa.Column("automation_id", sa.String(64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("automation_id", name="pk_automation_states"),
    )


def downgrade() -> None:
    op.drop_table("automation_states")
    op.drop_table("automation_cursors")
    op.drop_index("ix_automation_runs_user", table_name="automation_runs")
    op.drop_index("uq_automation_runs_active", table_name="automation_runs")
    op.drop_index("ix_automation_runs_automation_user", table_name="automation_runs")
    op.drop_index("ix_automation_runs_due", table_name="automation_runs")
    op.drop_table("automation_runs")
