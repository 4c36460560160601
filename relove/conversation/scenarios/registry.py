"""The active scenario flows, reloadable without restart; a broken file keeps the old ones."""

from __future__ import annotations

import logging
from pathlib import Path

from relove.conversation.ai_sessions.modes import AIMode
from relove.conversation.scenarios.model import Flow, ScenarioFile, load_scenarios

log = logging.getLogger(__name__)


class ScenarioRegistry:
    def __init__(self, path: Path | None = None, flows: ScenarioFile | None = None) -> None:
        self.path = Path(path) if path else None
        self.current = flows or ScenarioFile()

    @classmethod
    def from_file(cls, path: Path | None) -> ScenarioRegistry:
        """Load at start-up; a broken file raises (start-up should fail loudly)."""
        registry = cls(path)
        if path is not None:
            registry.current = load_scenarios(Path(path))
        return registry

    def reload(self) -> ScenarioFile:
        """Re-read the file. On ``DefinitionError`` the previous flows stay active."""
        if self.path is None:
            return self.current
        new = load_scenarios(self.path)
        self.current = new
        log.info("scenarios reloaded from %s: %d flows", self.path, len(new.flows))
        return new

    @property
    def flows(self) -> list[Flow]:
        return self.current.flows

    def flow(self, flow_id: str) -> Flow | None:
        return self.current.flow(flow_id)

    def for_command(self, command: str) -> Flow | None:
        return next((f for f in self.flows if command in f.start.commands), None)

    def for_start(self, payload: str | None) -> list[Flow]:
        """Flows a ``/start [payload]`` may begin, in file order: deep-link matches first."""
        flows: list[Flow] = []
        if payload:
            flows += [f for f in self.flows if payload in f.start.deep_links]
        flows += [f for f in self.flows if "start" in f.start.commands and f not in flows]
        return flows

    def mode(self, mode_id: str) -> AIMode | None:
        return self.current.mode(mode_id)

    def mode_for_command(self, command: str) -> AIMode | None:
        return next((m for m in self.current.ai_sessions if command in m.start.commands), None)

    def mode_for_deep_link(self, payload: str | None) -> AIMode | None:
        if not payload:
            return None
        return next((m for m in self.current.ai_sessions if payload in m.start.deep_links), None)

    def mode_ending_with(self, command: str) -> AIMode | None:
        return next((m for m in self.current.ai_sessions if command in m.end.commands), None)

    def commands(self) -> set[str]:
        return {c for f in self.flows for c in f.start.commands if c != "start"}
