from relove.bot.middlewares.session import CommitBeforeSend, DbSessionMiddleware
from relove.bot.middlewares.touch import TouchMiddleware, touch_from_update

__all__ = ["CommitBeforeSend", "DbSessionMiddleware", "TouchMiddleware", "touch_from_update"]
