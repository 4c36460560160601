"""Who writes events (:class:`EventSource`) and the stable event names (docs/events.md).

Names are ``object.action`` in lower case; they become the webhook contract, so a name here never
changes meaning. Custom events (``relove events track``, the API) use the same form.
"""

from __future__ import annotations

import enum
import re

from relove.errors import InvalidInput


class EventSource(enum.StrEnum):
    """Where a change came from."""

    bot = "bot"  #: the user did it in Telegram (touch, scenarios, buttons …)
    cli = "cli"  #: an operator at the shell
    api = "api"  #: an integration over the REST API (actor: the token's name)
    console = "console"  #: an operator in the web console (actor: ``admin:<id>``)
    import_ = "import"  #: a bulk import
    automation = "automation"  #: an automation step
    broadcast = "broadcast"  #: a broadcast and its deliveries
    system = "system"  #: the product itself (inference, retention, defaults)
    llm = "llm"  #: a language model decided it (AI sessions, companion)


#: The events the product writes itself (see docs/events.md for each one's props).
USER_CREATED = "user.created"
USER_BLOCKED = "user.blocked"
USER_UNBLOCKED = "user.unblocked"
USER_DELETED = "user.deleted"
USER_GENDER_CHANGED = "user.gender_changed"
MESSAGE_RECEIVED = "message.received"
COMMAND_USED = "command.used"
BUTTON_PRESSED = "button.pressed"
MESSAGE_SENT = "message.sent"
MARKER_CHANGED = "marker.changed"
SCENARIO_STARTED = "scenario.started"
SCENARIO_ANSWERED = "scenario.answered"
SCENARIO_COMPLETED = "scenario.completed"
SCENARIO_CANCELLED = "scenario.cancelled"
RECOMMENDATION_SHOWN = "recommendation.shown"
RECOMMENDATION_PICKED = "recommendation.picked"
BROADCAST_STARTED = "broadcast.started"
BROADCAST_COMPLETED = "broadcast.completed"
DELIVERY_SENT = "delivery.sent"
DELIVERY_BLOCKED = "delivery.blocked"
DELIVERY_FAILED = "delivery.failed"
DELIVERY_UNKNOWN = "delivery.unknown"
LINK_CLICKED = "link.clicked"
LLM_REPLIED = "llm.replied"
IMPORT_COMPLETED = "import.completed"
AI_SESSION_STARTED = "ai_session.started"
AI_SESSION_TURN = "ai_session.turn"
AI_SESSION_COMPLETED = "ai_session.completed"
AI_SESSION_ABANDONED = "ai_session.abandoned"
AUTOMATION_STARTED = "automation.started"
AUTOMATION_STEP = "automation.step"
AUTOMATION_COMPLETED = "automation.completed"
AUTOMATION_STOPPED = "automation.stopped"

#: What the user did themselves: "active" in retention, the default of ``did`` examples.
USER_ACTIONS = (MESSAGE_RECEIVED, COMMAND_USED, BUTTON_PRESSED, LINK_CLICKED)

_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


def check_name(name: str) -> str:
    """``name`` if it is a valid event name (``object.action``: lower-case words joined by dots,
    at most 100 characters), else :class:`InvalidInput`."""
    from relove.events.models import NAME_MAX_LENGTH

    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"event name {str(name)[:40]!r} is not object.action "
            "(lower-case letters, digits and _, joined by dots)"
        )
    return name


def check_source(source: str | EventSource) -> EventSource:
    try:
        return EventSource(source)
    except ValueError:
        known = ", ".join(s.value for s in EventSource)
        raise InvalidInput(f"unknown event source {source!r}; expected one of {known}") from None
