"""Every console action is an event with the admin as actor (``source=console``,
``actor=admin:<id>``), written in the same transaction as the change.

Changes to a user are recorded by the services themselves (``marker.changed`` from the marker
service, ``broadcast.started`` from the broadcasts service) with the console as source; the
actions below have no event of their own elsewhere. Their names and props are listed in
docs/console.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from relove.events import EventSource, record

SOURCE = EventSource.console

ADMIN_LOGGED_IN = "admin.logged_in"
ADMIN_LOGGED_OUT = "admin.logged_out"
ADMIN_ADDED = "admin.added"
ADMIN_REMOVED = "admin.removed"
SEGMENT_SAVED = "segment.saved"
SEGMENT_DELETED = "segment.deleted"
BROADCAST_CREATED = "broadcast.created"
BROADCAST_SCHEDULED = "broadcast.scheduled"
BROADCAST_PAUSED = "broadcast.paused"
BROADCAST_RESUMED = "broadcast.resumed"
BROADCAST_CANCELLED = "broadcast.cancelled"
BROADCAST_TEST_SENT = "broadcast.test_sent"
BROADCAST_REQUEUED = "broadcast.unknown_requeued"
BULK_APPLIED = "bulk.applied"
USERS_EXPORTED = "users.exported"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
SCENARIOS_RELOADED = "scenarios.reloaded"
WEBHOOK_ADDED = "webhook.added"
WEBHOOK_ENABLED = "webhook.enabled"
WEBHOOK_DISABLED = "webhook.disabled"
WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
WEBHOOK_TESTED = "webhook.tested"
WEBHOOK_REPLAYED = "webhook.replayed"
AUTOMATION_PAUSED = "automation.paused"
AUTOMATION_RESUMED = "automation.resumed"


def actor_of(admin_id: int) -> str:
    return f"admin:{admin_id}"


async def audit(
    session: AsyncSession, admin_id: int, name: str, props: Mapping[str, Any] | None = None,
    *, user_id: int | None = None,
) -> None:
    """Record a console action in the caller's transaction."""
    await record(session, user_id, name, props, source=SOURCE, actor=actor_of(admin_id))
