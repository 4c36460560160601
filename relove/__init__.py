"""relove: a Telegram communication bot and audience platform around one flexible User."""

from relove.db.models import Gender, User

__all__ = ["Gender", "User"]
__version__ = "0.1.0"
