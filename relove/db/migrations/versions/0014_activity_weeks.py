"""activity_weeks: per user and week, the days with a user action, kept by triggers on events

Retention reads it instead of the window's raw events (8-week retention at 10M events / 1M
users: see docs/benchmarks.md, "Events (history)"). The triggers (:mod:`relove.events.activity`)
are created before the backfill, in the same transaction, with ``events`` locked against
writes meanwhile: an event written during the migration waits, then its trigger counts it.

Revision ID: 0014_activity_weeks
Revises: 0013_automation_triggers
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.events.activity import backfill, create_triggers, drop_triggers

revision = "0014_activity_weeks"
down_revision = "0013_automation_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "activity_weeks",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("days", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "week", name="pk_activity_weeks"),
    )
    if bind.dialect.name == "postgresql":
        op.execute("LOCK TABLE events IN SHARE MODE")
    create_triggers(bind)
    backfill(bind)


def downgrade() -> None:
    drop_triggers(op.get_bind())
    op.drop_table("activity_weeks")
