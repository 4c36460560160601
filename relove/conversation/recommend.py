"""``/recommend``: pick up to K catalog items for a user, remember what was shown, record picks."""

from __future__ import annotations

import logging

from relove.conversation.catalog import CatalogItem, CatalogRegistry, rank
from relove.conversation.reads import user_dict
from relove.db.models import UserSnapshot
from relove.db.uow import begin_write
from relove.events import EventSource, record
from relove.events.catalog import RECOMMENDATION_PICKED, RECOMMENDATION_SHOWN
from relove.users.service import (
    Executor,
    add_to_list,
    append_bounded,
    set_values,
)

log = logging.getLogger(__name__)


class Recommender:
    def __init__(self, catalog: CatalogRegistry, *, count: int = 3, memory: int = 20) -> None:
        self.catalog = catalog
        self.count = count
        self.memory = memory

    async def recommend(self, executor: Executor, user: UserSnapshot) -> list[CatalogItem]:
        """Up to ``count`` items, ranked for the user; remembered in ``context.recommended``
        (the last ``memory`` shown ids) so the next call rotates."""
        await begin_write(executor)  # reads the user, then records what was shown
        data = await user_dict(executor, user)
        items = rank(self.catalog.current, data, k=self.count)
        if items:
            shown = {"items": [item.id for item in items]}
            await record(executor, user.id, RECOMMENDATION_SHOWN, shown, source=EventSource.bot)
        if self.memory:
            for item in items:
                await append_bounded(
                    executor, user.id, "recommended", item.id, keep=self.memory, doc="context"
                )
        return items

    async def pick(
        self, executor: Executor, user: UserSnapshot, item_id: str
    ) -> CatalogItem | None:
        """Record a pick in ``markers.picks`` (each id once) and ``markers.last_pick``."""
        item = self.catalog.current.get(item_id)
        if item is None:
            return None
        await add_to_list(executor, user.id, "picks", item.id, source=EventSource.bot)
        await set_values(executor, user.id, {"last_pick": item.id}, source=EventSource.bot)
        await record(executor, user.id, RECOMMENDATION_PICKED, {"item": item.id},
                     source=EventSource.bot)  # fmt: skip
        log.info("user %s picked %s", user.id, item.id)
        return item
