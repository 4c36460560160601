from relove.bot.middlewares.outgoing import MessageLogMiddleware, RecordOutgoing
from relove.bot.middlewares.session import CommitBeforeSend, DbSessionMiddleware
from relove.bot.middlewares.touch import TouchMiddleware, touch_from_update

__all__ = [
    "CommitBeforeSend",
    "DbSessionMiddleware",
    "MessageLogMiddleware",
    "RecordOutgoing",
    "TouchMiddleware",
    "touch_from_update",
]
