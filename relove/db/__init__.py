from relove.db.engine import create_engine, create_session_factory
from relove.db.models import Base, Gender, User

__all__ = ["Base", "Gender", "User", "create_engine", "create_session_factory"]
