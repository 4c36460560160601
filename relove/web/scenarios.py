"""The scenario and catalog files as the console sees them: its registries (the bot's own when
it runs in the same process, otherwise a copy loaded from the same settings), *Validate* (the
checks of ``relove conversation check``, nothing changes) and *Reload* (what the bot's /reload
does)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from relove.config import Settings
from relove.conversation.catalog import CatalogRegistry, load_catalog
from relove.conversation.prompt import load_persona
from relove.conversation.scenarios import ScenarioRegistry, load_scenarios
from relove.conversation.yamlfile import DefinitionError
from relove.errors import ConfigError

log = logging.getLogger(__name__)


def own_scenarios(settings: Settings) -> ScenarioRegistry:
    """The flows of ``RELOVE_SCENARIOS_FILE``; a broken file starts empty (as the bot does),
    keeping the path so *Reload* picks up the fixed file."""
    try:
        registry = ScenarioRegistry.from_file(settings.scenarios_file)
    except DefinitionError as e:
        log.error("console: scenario file rejected, showing no flows: %s", e)
        registry = ScenarioRegistry()
    registry.path = settings.scenarios_file
    return registry


def own_catalog(settings: Settings) -> CatalogRegistry:
    try:
        registry = CatalogRegistry.from_file(settings.catalog_file)
    except DefinitionError as e:
        log.error("console: catalog file rejected, showing no items: %s", e)
        registry = CatalogRegistry()
    registry.path = settings.catalog_file
    return registry


@dataclass
class FileCheck:
    """One file's verdict: ``error`` is the one line ``relove conversation check`` prints."""

    what: str  # scenarios | catalog | persona
    path: str | None
    error: str | None = None
    flows: int = 0
    modes: int = 0
    items: int = 0
    chars: int = 0


def check_files(settings: Settings) -> list[FileCheck]:
    """Validate the files the bot would load (read fresh from disk; nothing is activated)."""
    out: list[FileCheck] = []
    scenarios = FileCheck("scenarios", _name(settings.scenarios_file))
    if settings.scenarios_file is not None:
        try:
            loaded = load_scenarios(settings.scenarios_file)
            scenarios.flows, scenarios.modes = len(loaded.flows), len(loaded.ai_sessions)
        except DefinitionError as e:
            scenarios.error = str(e)
    out.append(scenarios)
    catalog = FileCheck("catalog", _name(settings.catalog_file))
    if settings.catalog_file is not None:
        try:
            catalog.items = len(load_catalog(settings.catalog_file).items)
        except DefinitionError as e:
            catalog.error = str(e)
    out.append(catalog)
    persona = FileCheck("persona", _name(settings.persona_file))
    try:
        persona.chars = len(load_persona(settings.persona_file))
    except ConfigError as e:
        persona.error = str(e)
    out.append(persona)
    return out


def _name(path: Path | None) -> str | None:
    return str(path) if path is not None else None


@dataclass
class Reloaded:
    flows: int
    items: int


def reload_files(scenarios: ScenarioRegistry, catalog: CatalogRegistry) -> Reloaded:
    """Re-read both files, as the bot's /reload does, but all or nothing: when either file is
    broken, ``DefinitionError`` (its line and reason) and both registries keep what they had."""
    flows = load_scenarios(scenarios.path) if scenarios.path is not None else scenarios.current
    items = load_catalog(catalog.path) if catalog.path is not None else catalog.current
    scenarios.current, catalog.current = flows, items
    log.info("console: reloaded %d flows, %d catalog items", len(flows.flows), len(items.items))
    return Reloaded(len(flows.flows), len(items.items))
