"""What every console request can reach: settings, the session factory, texts, templates, the
bot sender, the navigation — built once in :func:`relove.web.app.create_console`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relove.admins.models import Role
from relove.config import Settings
from relove.db.types import utcnow
from relove.web.cache import StaleCache
from relove.web.ratelimit import PerKeyLimiter
from relove.web.render import Renderer
from relove.web.telegram import ConsoleBot
from relove.web.texts import ConsoleTexts


@dataclass(frozen=True)
class NavItem:
    """A section in the console's navigation: shown to admins whose role allows ``role``."""

    path: str
    #: a key of the console texts (nav.audience …), or the label itself when not a key
    text: str
    role: Role = Role.viewer


@dataclass(frozen=True)
class ConsoleExtension:
    """A section another feature adds (automations, webhooks, scenarios …): its routes, guarded
    with :func:`relove.web.deps.section` like the built-in ones, and its navigation entry."""

    router: APIRouter
    nav: NavItem
    #: a folder of the extension's templates (they may extend "base.html")
    templates: Path | None = None


@dataclass
class Console:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    texts: dict[str, ConsoleTexts]
    renderer: Renderer
    bot: ConsoleBot | None
    nav: list[NavItem]
    chat_limiter: PerKeyLimiter
    cache: StaleCache = field(default_factory=StaleCache)
    clock: Callable[[], datetime] = field(default=utcnow)
    #: sessions on the read replica (RELOVE_DATABASE_READ_URL); None: the primary
    read_sessions: async_sessionmaker[AsyncSession] | None = None

    def now(self) -> datetime:
        return self.clock()

    @property
    def reader(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for reads that may lag the primary a little — lists, counts, the dashboard,
        exports: the replica when ``RELOVE_DATABASE_READ_URL`` is set, else the primary."""
        return self.read_sessions or self.sessions

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine :attr:`reader` is bound to (streamed exports read over it)."""
        engine = self.reader.kw["bind"]
        assert isinstance(engine, AsyncEngine)
        return engine

    @property
    def engine(self) -> AsyncEngine:
        """The engine the session factory is bound to (streamed exports read over it)."""
        engine = self.sessions.kw["bind"]
        assert isinstance(engine, AsyncEngine)
        return engine
