"""Scenarios without code: question flows declared in YAML (see ``model.py``), run by
``engine.py``, kept reloadable in a :class:`~.registry.ScenarioRegistry`."""

from relove.conversation.scenarios.model import Flow, Option, ScenarioFile, Step, load_scenarios
from relove.conversation.scenarios.registry import ScenarioRegistry

__all__ = ["Flow", "Option", "ScenarioFile", "Step", "ScenarioRegistry", "load_scenarios"]
