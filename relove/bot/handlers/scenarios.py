"""Scenario flows in the chat: start them (/start, deep links, their commands), ask questions
with buttons or free text, take answers, and /reload the files (admins)."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, CommandStart, Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.models import Role
from relove.bot.filters import IsAdmin
from relove.bot.handlers.reply import edit_markup_quietly, send_markdown, send_quietly
from relove.bot.handlers.start import record_source
from relove.bot.texts import Texts
from relove.conversation.components import ConversationComponents
from relove.conversation.formatting import to_html
from relove.conversation.scenarios.engine import AnswerRejected, Finished, Outcome, Question
from relove.conversation.yamlfile import DefinitionError
from relove.db.models import UserSnapshot
from relove.telegram.limits import is_start_payload

log = logging.getLogger(__name__)
_ID = r"^[a-z0-9_]{1,20}$"  # flow and step ids (relove/conversation/scenarios/model.py)


class ScenarioCallback(CallbackData, prefix="sc"):
    """A question's button: ``sc:<flow>:<step>:<action>``, action ``ok``, ``skip`` or the
    option's index. Anything else (a forged ``sc:onboarding:city:²``) does not unpack, and the
    catch-all answers it as stale."""

    flow: str = Field(pattern=_ID)
    step: str = Field(pattern=_ID)
    action: str = Field(pattern=r"^(?:ok|skip|[0-9]{1,3})$")

    @property
    def option(self) -> int | None:
        return int(self.action) if self.action.isascii() and self.action.isdigit() else None


# -- rendering ------------------------------------------------------------------------------------
def question_keyboard(q: Question, texts: Texts) -> InlineKeyboardMarkup | None:
    step = q.step

    def data(action: str) -> str:
        return ScenarioCallback(flow=q.flow.id, step=step.id, action=action).pack()

    kb = InlineKeyboardBuilder()
    for i, option in enumerate(step.options):
        mark = "✓ " if step.type == "multi" and option.value in q.selected else ""
        kb.button(text=mark + option.label, callback_data=data(str(i)))
    if step.options:
        kb.adjust(2 if len(step.options) > 3 else 1)
    extra = []
    if step.type == "multi":
        extra.append(InlineKeyboardButton(text=texts("scenario_done_button"),
                                          callback_data=data("ok")))  # fmt: skip
    if step.skippable:
        extra.append(InlineKeyboardButton(text=texts("scenario_skip_button"),
                                          callback_data=data("skip")))  # fmt: skip
    if extra:
        kb.row(*extra)
    markup = kb.as_markup()
    return markup if markup.inline_keyboard else None


def error_text(q: Question, reason: str, texts: Texts) -> str:
    if q.step.error and reason != "choose":
        return to_html(q.step.error)  # operator-written Markdown, like the question itself
    v = q.step.validate_
    values: dict[str, Any] = {"min": v.min if v.min is not None else v.min_length, "max": v.max}
    if reason == "too_long":
        values["max"] = v.max_length
    return texts(f"scenario_error_{reason}", **values)


async def show(message: Message, outcome: Outcome, texts: Texts) -> None:
    """Operator-written texts go through :func:`send_markdown` (split in UTF-16 units, never
    raising on a 400: a refused text becomes a short notice, with the question's buttons)."""
    fallback = texts("scenario_not_delivered")
    if isinstance(outcome, Finished):
        if outcome.flow.done:
            await send_markdown(message, outcome.flow.done, fallback=fallback)
        else:
            await send_quietly(message, texts("scenario_done_default"))
        return
    if outcome.intro:
        await send_markdown(message, outcome.intro, fallback=fallback)
    await send_markdown(
        message,
        outcome.step.text,
        fallback=fallback,
        reply_markup=question_keyboard(outcome, texts),
    )


# -- filters --------------------------------------------------------------------------------------
class InScenario(Filter):
    """A plain (non-command) text from a user who is in the middle of a flow."""

    async def __call__(self, message: Message, user: UserSnapshot | None = None) -> bool:
        if user is None or not message.text or message.text.startswith("/"):
            return False
        return isinstance((user.context or {}).get("scenario"), dict)


class FlowCommand(Filter):
    """A command that starts a flow (read from the current file, so /reload applies)."""

    async def __call__(
        self, message: Message, conversation: ConversationComponents
    ) -> bool | dict[str, Any]:
        text = message.text or ""
        if not text.startswith("/"):
            return False
        name = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()
        if name in conversation.scenarios.commands():
            return {"flow_command": name}
        return False


# -- handlers -------------------------------------------------------------------------------------
async def on_start(
    message: Message,
    command: CommandObject,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    payload = (command.args or "").strip() or None
    if payload and is_start_payload(payload):
        # Before the flow starts, so its conditions see the source (idempotent if /start
        # itself records it again below).
        await record_source(session, user.id, payload)
    outcome = await conversation.engine.start_for(session, user, command="start", payload=payload)
    if outcome is None:
        raise SkipHandler  # no flow for this user: the plain /start answers
    await message.answer(texts("welcome", name=user.first_name or user.username or ""))
    await show(message, outcome, texts)


async def on_flow_command(
    message: Message,
    flow_command: str,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    outcome = await conversation.engine.start_for(session, user, command=flow_command, payload=None)
    if outcome is None:
        await message.answer(texts("scenario_not_available"))
        return
    await show(message, outcome, texts)


async def on_cancel(
    message: Message,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    if await conversation.engine.cancel(session, user):
        await message.answer(texts("scenario_cancelled"))
    else:
        raise SkipHandler


async def on_answer(
    message: Message,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    try:
        outcome = await conversation.engine.answer_text(session, user, message.text or "")
    except AnswerRejected as e:
        q = e.question
        markup = question_keyboard(q, texts)
        await send_quietly(message, error_text(q, e.reason, texts), reply_markup=markup)
        return
    if outcome is None:
        raise SkipHandler  # the flow ended or was removed: let the conversation answer
    await show(message, outcome, texts)


async def on_button(
    query: CallbackQuery,
    callback_data: ScenarioCallback,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    flow_id, step_id, option = callback_data.flow, callback_data.step, callback_data.option
    engine = conversation.engine
    if callback_data.action == "ok":
        outcome = await engine.confirm(session, user, flow_id, step_id)
    elif callback_data.action == "skip":
        outcome = await engine.skip(session, user, flow_id, step_id)
    else:
        assert option is not None  # the pattern admits ok, skip or ASCII digits only
        outcome = await engine.choose(session, user, flow_id, step_id, option)
    if outcome is None:
        await query.answer(texts("scenario_stale"))
        return
    message = query.message if isinstance(query.message, Message) else None
    if isinstance(outcome, Question) and outcome.step.id == step_id and outcome.flow.id == flow_id:
        # same question (a multi-choice toggle, or "done" with nothing chosen)
        if outcome.error:
            await query.answer(error_text(outcome, outcome.error, texts), show_alert=False)
        else:
            await query.answer()
        if message is not None and not outcome.error:
            await edit_markup_quietly(message, question_keyboard(outcome, texts))
        return
    await query.answer()
    if message is not None:
        await edit_markup_quietly(message, None)  # answered: remove the old buttons
        await show(message, outcome, texts)


async def on_reload(message: Message, texts: Texts, conversation: ConversationComponents) -> None:
    try:
        flows = conversation.scenarios.reload()
        catalog = conversation.catalog.reload()
    except DefinitionError as e:
        log.warning("reload refused: %s", e)
        await message.answer(texts("scenarios_reload_failed", error=str(e)))
        return
    await message.answer(
        texts("scenarios_reloaded", flows=len(flows.flows), items=len(catalog.items))
    )


def create_router() -> Router:
    router = Router(name="scenarios")
    router.message.register(on_reload, Command("reload"), IsAdmin(Role.operator))
    router.message.register(on_start, CommandStart(), F.chat.type == "private")
    router.message.register(on_cancel, Command("cancel"))
    router.message.register(on_flow_command, FlowCommand(), F.chat.type == "private")
    router.message.register(on_answer, InScenario(), F.chat.type == "private")
    router.callback_query.register(on_button, ScenarioCallback.filter())
    return router
