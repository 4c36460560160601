"""/recommend: up to K catalog items for the user, with buttons; a press records the pick."""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from relove.bot.handlers.reply import send_markdown, send_quietly
from relove.bot.texts import Texts
from relove.conversation.catalog import CatalogItem
from relove.conversation.components import ConversationComponents
from relove.conversation.formatting import to_html
from relove.db.models import UserSnapshot
from relove.telegram.limits import TEXT_LIMIT, utf16_len


class RecommendCallback(CallbackData, prefix="rec"):
    """A catalog item's button: ``rec:<item id>`` (ids as in relove/conversation/catalog.py)."""

    item: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")


def _label(title: str) -> str:
    return title if len(title) <= 60 else title[:59] + "…"


def item_html(item: CatalogItem) -> str:
    lines = [f"<b>{html.escape(item.title, quote=False)}</b>"]
    if item.text:
        lines.append(to_html(item.text))
    if item.url:
        url = html.escape(item.url, quote=True)
        lines.append(f'<a href="{url}">{html.escape(item.url, quote=False)}</a>')
    return "\n".join(lines)


def keyboard(items: list[CatalogItem]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for item in items:
        data = RecommendCallback(item=item.id).pack()
        kb.row(InlineKeyboardButton(text=_label(item.title), callback_data=data))
    return kb.as_markup()


async def recommend(
    message: Message,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    items = await conversation.recommender.recommend(session, user)
    if not items:
        await message.answer(texts("recommend_empty"))
        return
    lines = [texts("recommend_title")]
    for n, item in enumerate(items, 1):
        lines.append(f"{n}. <b>{html.escape(item.title, quote=False)}</b>")
    await message.answer("\n".join(lines), reply_markup=keyboard(items))


async def pick(
    query: CallbackQuery,
    callback_data: RecommendCallback,
    user: UserSnapshot,
    session: AsyncSession,
    texts: Texts,
    conversation: ConversationComponents,
) -> None:
    item = await conversation.recommender.pick(session, user, callback_data.item)
    if item is None:
        await query.answer(texts("recommend_gone"))
        return
    await query.answer(texts("recommend_picked"))
    if isinstance(query.message, Message):
        await send_item(query.message, item, texts)


async def send_item(message: Message, item: CatalogItem, texts: Texts) -> None:
    """The item as one message when it fits Telegram's limit (UTF-16 units); otherwise its
    title and link first, then its text split like any long reply. Never raises on a 400."""
    whole = item_html(item)
    if utf16_len(whole) <= TEXT_LIMIT or not item.text:
        await send_quietly(message, whole)
        return
    await send_quietly(message, item_html(item.model_copy(update={"text": None})))
    await send_markdown(message, item.text, fallback=texts("reply_not_delivered"))


def create_router() -> Router:
    router = Router(name="recommend")
    router.message.register(recommend, Command("recommend"))
    router.callback_query.register(pick, RecommendCallback.filter())
    return router
