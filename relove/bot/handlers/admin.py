"""Admin commands: /user (any admin), /mark and /unmark (operators and owners)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from relove.admins.models import Role
from relove.bot.filters import IsAdmin
from relove.bot.render import document_lines, user_card, with_history
from relove.bot.texts import Texts
from relove.errors import InvalidInput, NotFound, ReloveError
from relove.events.timeline import timeline
from relove.users import service
from relove.users.lifecycle import get_user
from relove.users.paths import check_user_id, parse_assignment, parse_path

#: Events shown under the /user card.
RECENT_EVENTS = 10


def _split_id(args: str | None) -> tuple[int, list[str]]:
    parts = (args or "").split()
    if not parts:
        raise InvalidInput("no user id")
    try:
        user_id = int(parts[0])
    except ValueError as e:
        raise InvalidInput(f"{parts[0]!r} is not a user id") from e
    return check_user_id(user_id), parts[1:]


def _actor(message: Message) -> str | None:
    """Who changes a user from the bot: ``admin:<telegram id>``."""
    return f"admin:{message.from_user.id}" if message.from_user else None


async def show_user(
    message: Message, command: CommandObject, session: AsyncSession, texts: Texts
) -> None:
    try:
        user_id, _ = _split_id(command.args)
    except InvalidInput:
        await message.answer(texts("admin_usage_user"))
        return
    try:
        user = await get_user(session, user_id)
    except NotFound:
        await message.answer(texts("admin_user_not_found", user_id=user_id))
        return
    recent = await timeline(session, user_id, limit=RECENT_EVENTS)
    card = user_card(user, texts, title=texts("user_card_title", user_id=user_id))
    await message.answer(with_history(card, recent.events, texts))


async def mark(
    message: Message, command: CommandObject, session: AsyncSession, texts: Texts
) -> None:
    try:
        user_id, items = _split_id(command.args)
        if not items:
            raise InvalidInput("no key=value")
        values = dict(parse_assignment(item) for item in items)
    except InvalidInput:
        await message.answer(texts("admin_usage_mark"))
        return
    op = service.set_values(session, user_id, values, source="bot", actor=_actor(message))
    await _apply(message, session, texts, user_id, op)


async def unmark(
    message: Message, command: CommandObject, session: AsyncSession, texts: Texts
) -> None:
    try:
        user_id, keys = _split_id(command.args)
        if not keys:
            raise InvalidInput("no key")
        for key in keys:
            parse_path(key)
    except InvalidInput:
        await message.answer(texts("admin_usage_unmark"))
        return
    op = service.unset(session, user_id, keys, source="bot", actor=_actor(message))
    await _apply(message, session, texts, user_id, op)


async def _apply(message: Message, session: AsyncSession, texts: Texts, user_id: int, op) -> None:  # type: ignore[no-untyped-def]
    try:
        markers = await op
    except NotFound:
        await session.rollback()
        await message.answer(texts("admin_user_not_found", user_id=user_id))
        return
    except ReloveError as e:
        await session.rollback()
        await message.answer(texts("admin_bad_input", error=str(e)))
        return
    await session.commit()
    lines = document_lines(markers, texts)
    await message.answer("\n".join([texts("admin_marked", user_id=user_id), *lines]))


def create_router() -> Router:
    router = Router(name="admin")
    # The command first: the admins table is read only for these commands.
    router.message.register(show_user, Command("user"), IsAdmin())
    router.message.register(mark, Command("mark"), IsAdmin(Role.operator))
    router.message.register(unmark, Command("unmark"), IsAdmin(Role.operator))
    return router
