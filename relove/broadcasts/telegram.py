"""The broadcast ``send`` over :mod:`relove.telegram`'s lean client (no aiogram: a worker
process stays small), and the test send to the admins."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from relove.broadcasts import service
from relove.broadcasts.content import Recipient, RenderedMessage
from relove.db.models import User
from relove.telegram.client import BotApiClient
from relove.telegram.outcomes import Outcome, SendResult
from relove.telegram.ratelimit import RateLimiter

#: attempts per admin when Telegram answers 429
TEST_ATTEMPTS = 3


class HttpSend:
    """``send(recipient, message) -> SendResult``: the sender's :data:`~relove.broadcasts.base.
    Send` (it paced the call through its lane already)."""

    def __init__(self, client: BotApiClient, *, paid: bool = False) -> None:
        self.client = client
        self.paid = paid

    async def __call__(self, recipient: Recipient, message: RenderedMessage) -> SendResult:
        return await self.client.send(recipient.id, message, paid=self.paid)


async def send_test(
    client: BotApiClient, limiter: RateLimiter, session: AsyncSession, broadcast_id: int,
    admin_ids: list[int],
) -> list[tuple[str, bool]]:
    """Send a broadcast's message to each admin, rendered for that admin (as replies: ahead of
    any broadcast); one line per admin, with whether it was sent."""
    broadcast = await service.get_broadcast(session, broadcast_id)
    template = service.template_of(broadcast)
    lines = []
    for admin_id in admin_ids:
        user = await session.get(User, admin_id)
        recipient = service.recipient_of(user) if user is not None else Recipient(id=admin_id)
        message = template.render(recipient)
        for _ in range(TEST_ATTEMPTS):
            await limiter.acquire(admin_id)
            result = await client.send(admin_id, message)
            if result.outcome is not Outcome.retry_after:
                break
            await limiter.pause(result.retry_after or 1.0)
        if result.outcome is Outcome.sent:
            lines.append((f"{admin_id}: sent", True))
        else:
            lines.append((f"{admin_id}: not sent ({result.error})", False))
    return lines
