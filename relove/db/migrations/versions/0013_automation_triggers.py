"""automations: schedule and enters triggers (their last tick, who matches an enters filter)

Revision ID: 0013_automation_triggers
Revises: 0011_inbox
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import UTCDateTime

revision = "0013_automation_triggers"
down_revision = "0013_events_funnel_idx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation_triggers",
        sa.Column("automation_id", sa.String(64), nullable=False),
        sa.Column("spec", sa.String(200), nullable=False),
        sa.Column("last_tick", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("automation_id", name="pk_automation_triggers"),
    )
    op.create_table(
        "automation_members",
        sa.Column("automation_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_automation_members_user_id_users"),
        sa.PrimaryKeyConstraint("automation_id", "user_id", name="pk_automation_members"),
    )


def downgrade() -> None:
    op.drop_table("automation_members")
    op.drop_table("automation_triggers")
