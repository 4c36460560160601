"""events: history (partitioned by month on PostgreSQL) and the conversation's messages

Revision ID: 0004_events
Revises: 0003_broadcasts
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relove.db.types import JSONDocument, UTCDateTime
from relove.events.catalog import EventSource
from relove.events.models import PROPS_MAX_BYTES
from relove.events.partitions import create_partitioned_table

revision = "0004_events"
down_revision = "0003_broadcasts"
branch_labels = None
depends_on = None


def _sources() -> str:
    return ", ".join(f"'{s.value}'" for s in EventSource)


def upgrade() -> None:
    bind = op.get_bind()
    is_pg = bind.dialect.name == "postgresql"
    if is_pg:
        create_partitioned_table(bind)
    else:
        op.create_table(
            "events",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("user_id", sa.BigInteger()),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("props", JSONDocument, server_default="{}", nullable=False),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("actor", sa.String(200)),
            sa.Column("at", UTCDateTime(), nullable=False),
            sa.Column("dedupe_key", sa.String(200)),
            # AUTOINCREMENT: an id is never reused, even after the newest rows are deleted.
            sa.PrimaryKeyConstraint("id", name="pk_events"),
            sa.CheckConstraint(
                f"json_type(props) = 'object' AND length(CAST(props AS BLOB)) <= {PROPS_MAX_BYTES}",
                name="props",
            ),
            sa.CheckConstraint(f"source IN ({_sources()})", name="source"),
            sqlite_autoincrement=True,
        )
        op.execute("CREATE INDEX ix_events_user_id_at ON events (user_id, at DESC, id DESC)")
        op.create_index("ix_events_name_at", "events", ["name", "at"])
        op.create_index("ix_events_at", "events", ["at"])
        # A client-supplied dedupe key is unique per UTC day (the stored text starts with it).
        op.execute(
            "CREATE UNIQUE INDEX uq_events_dedupe ON events (dedupe_key, substr(at, 1, 10)) "
            "WHERE dedupe_key IS NOT NULL"
        )

    op.create_table(
        "messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text()),
        sa.Column("message_id", sa.BigInteger()),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.CheckConstraint("direction IN ('in', 'out')", name="direction"),
    )
    op.execute("CREATE INDEX ix_messages_user_id_at ON messages (user_id, at DESC, id DESC)")
    op.create_index("ix_messages_at", "messages", ["at"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS events_id_seq")
