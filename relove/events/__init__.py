"""History: every action becomes an event (see docs/events.md).

Writing: :func:`record` / :func:`record_many` in the caller's transaction; :class:`BatchInsert`
for writers that fold the batch into their own statement (the touch). Reading:
:func:`timeline` (a user's events, newest first, cursor-paginated).
"""

from relove.events.catalog import USER_ACTIONS, EventSource, check_name
from relove.events.models import Event, Message
from relove.events.record import (
    BatchInsert,
    NewEvent,
    NewMessage,
    batch_insert,
    record,
    record_many,
)

__all__ = [
    "USER_ACTIONS",
    "BatchInsert",
    "Event",
    "EventSource",
    "Message",
    "NewEvent",
    "NewMessage",
    "batch_insert",
    "check_name",
    "record",
    "record_many",
]
