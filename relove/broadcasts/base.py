"""The sender's view of the outside world: a ``send`` callable and a :class:`DeliveryStore`.

The sending loop (``sender.py``) knows neither the Bot API nor SQLAlchemy; ``telegram.py`` and
``store.py`` implement these interfaces, tests may implement them too. What a send can come to
(:class:`Outcome`) is :mod:`relove.telegram.outcomes`'s one classification.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from relove.broadcasts.content import Recipient, RenderedMessage
from relove.broadcasts.models import BroadcastStatus, DeliveryStatus
from relove.telegram.outcomes import Outcome, SendResult

__all__ = ["DeliveryResult", "DeliveryStore", "Outcome", "PendingDelivery", "Send", "SendResult"]


#: Sends one rendered message to one recipient; never raises for Bot API errors.
Send = Callable[[Recipient, RenderedMessage], Awaitable[SendResult]]


@dataclass(slots=True)
class PendingDelivery:
    """A pending delivery with what its template needs about the user."""

    delivery_id: int
    attempts: int
    recipient: Recipient


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: int
    user_id: int
    status: DeliveryStatus
    attempts: int
    message_id: int | None = None
    error: str | None = None
    sent_at: datetime | None = None


class DeliveryStore(ABC):
    """Where a broadcast's deliveries live. Every method commits before it returns."""

    @abstractmethod
    async def next_pending(
        self, broadcast_id: int, after_id: int, limit: int
    ) -> list[PendingDelivery]:
        """Up to ``limit`` pending deliveries with ids above ``after_id``, in id order."""

    @abstractmethod
    async def mark_sending(
        self, broadcast_id: int, owner: str, delivery_ids: Sequence[int]
    ) -> set[int]:
        """pending → sending for those ids, only while ``owner`` holds the running broadcast.

        Returns the ids actually moved; none when the broadcast was paused, cancelled or taken.
        """

    @abstractmethod
    async def record(self, broadcast_id: int, results: Sequence[DeliveryResult]) -> None:
        """Write outcomes (sending → sent/blocked/failed); deactivate blocked users."""

    @abstractmethod
    async def heartbeat(self, broadcast_id: int, owner: str, ttl: float) -> BroadcastStatus | None:
        """Extend ``owner``'s lease; the broadcast's status, or ``None`` if the lease is lost."""

    @abstractmethod
    async def finish(self, broadcast_id: int, owner: str) -> bool:
        """running → finished when nothing is pending or sending; False if work remains."""

    @abstractmethod
    async def pause(self, broadcast_id: int, owner: str, reason: str) -> None:
        """running → paused, with the reason (e.g. the error threshold was passed)."""

    @abstractmethod
    async def release(self, broadcast_id: int, owner: str) -> None:
        """Give up the lease (another worker may take the broadcast at once)."""
