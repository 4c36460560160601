"""``start_flow: <scenario id>``: an automation starts a scenario flow for its user.

The flow starts the way ``/start`` starts one (:meth:`ScenarioEngine.begin`, so its ``when`` and
``repeat`` rules apply and the user's ``context.scenario`` points at the first question), and
its first question goes out through the automation's send discipline: the flow state and the
run's ``sending`` commit together BEFORE the call, so an answer is taken whatever happens next
and the question is never sent twice. The messages are the bot's own rendering of a question
(the flow's intro, then the question with its option buttons, whose presses the bot's scenario
handlers take as if the user had typed /start).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from relove.conversation.formatting import split_html, to_html
from relove.conversation.scenarios.engine import Finished, Outcome, Question
from relove.db.models import Gender, User, UserSnapshot
from relove.telegram.message import Button, OutgoingMessage

#: Button labels the bot's texts give (``scenario_done_button``, ``scenario_skip_button``).
Labels = Callable[[str], str]

#: The scenario handlers' callback data: ``sc:<flow>:<step>:<action>``
#: (relove/bot/handlers/scenarios.py, ScenarioCallback).
CALLBACK_PREFIX = "sc"


def _data(q: Question, action: str) -> str:
    return f"{CALLBACK_PREFIX}:{q.flow.id}:{q.step.id}:{action}"


def question_keyboard(q: Question, labels: Labels) -> tuple[tuple[Button, ...], ...]:
    """The same keyboard the bot shows for a question (options two a row past three)."""
    step = q.step
    buttons = [Button(o.label, "", _data(q, str(i))) for i, o in enumerate(step.options)]
    per_row = 2 if len(step.options) > 3 else 1
    rows = [tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row)]
    extra = []
    if step.type == "multi":
        extra.append(Button(labels("scenario_done_button"), "", _data(q, "ok")))
    if step.skippable:
        extra.append(Button(labels("scenario_skip_button"), "", _data(q, "skip")))
    if extra:
        rows.append(tuple(extra))
    return tuple(rows)


def flow_messages(outcome: Outcome, labels: Labels) -> list[OutgoingMessage]:
    """What the bot would send for a flow's first outcome: the intro and the question (split
    where too long, the buttons on the last part), or the flow's done text."""
    if isinstance(outcome, Finished):
        done = outcome.flow.done
        return [OutgoingMessage(p) for p in split_html(done)] if done else []
    messages = [OutgoingMessage(p) for p in split_html(outcome.intro)] if outcome.intro else []
    parts = split_html(outcome.step.text) or [to_html("…")]
    keyboard = question_keyboard(outcome, labels)
    messages += [OutgoingMessage(p) for p in parts[:-1]]
    messages.append(OutgoingMessage(parts[-1], buttons=keyboard))
    return messages


def snapshot_of(user: User) -> UserSnapshot:
    """A read-only snapshot of a loaded user, as the bot's handlers get one."""
    return UserSnapshot(
        user.id, user.username, user.first_name, user.last_name, bool(user.is_active),
        Gender(user.gender), MappingProxyType(dict(user.context or {})),
        MappingProxyType(dict(user.markers or {})), user.created_at, user.updated_at,
        user.last_seen_at,
    )  # fmt: skip
