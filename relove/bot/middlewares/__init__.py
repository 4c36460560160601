from relove.bot.middlewares.session import DbSessionMiddleware
from relove.bot.middlewares.touch import TouchMiddleware, touch_from_update

__all__ = ["DbSessionMiddleware", "TouchMiddleware", "touch_from_update"]
