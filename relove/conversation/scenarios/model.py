"""The scenario file: flows of questions, validated with line-numbered errors.

```yaml
flows:
  - id: onboarding
    start: {commands: [start, onboarding], deep_links: [welcome]}
    when: city is missing          # optional, segment language
    repeat: false                  # a finished flow does not start again by itself
    intro: Давайте познакомимся!
    steps:
      - id: city
        text: Из какого вы города?
        type: text                 # text | choice | multi
        marker: city
        validate: {min_length: 2, max_length: 64}
      - id: interests
        type: multi
        text: Что вам интересно?
        marker: interests
        options: [{value: meditation, label: Медитации}, …]
    done: Спасибо!
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from relove.conversation.ai_sessions.modes import AIMode, resolve_personas
from relove.conversation.conditions import Condition, condition_or_none
from relove.conversation.yamlfile import read_yaml_file, validate
from relove.errors import InvalidKey
from relove.telegram.limits import is_start_payload
from relove.users.paths import parse_path

_ID = re.compile(r"^[a-z0-9_]{1,20}$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")

OptCondition = Annotated[Condition | None, BeforeValidator(condition_or_none)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("ids are 1-20 characters of a-z, 0-9 and _")
    return value


class Option(_Strict):
    value: str | int | bool = Field(description="what is written to the marker")
    label: str = Field(min_length=1, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):  # "- Медитации" means value = label
            return {"value": data, "label": data}
        return data


class Validation(_Strict):
    min_length: int = Field(default=1, ge=0)
    max_length: int = Field(default=200, ge=1, le=1000)
    pattern: str | None = None
    number: bool = False
    min: float | None = None
    max: float | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"pattern does not compile: {e}") from None
        return value


class Step(_Strict):
    id: str
    text: str = Field(min_length=1, max_length=4000)
    type: Literal["text", "choice", "multi"] = "text"
    marker: str
    options: list[Option] = Field(default_factory=list, max_length=20)
    validate_: Validation = Field(default_factory=Validation, alias="validate")
    error: str | None = Field(default=None, max_length=1000)
    when: OptCondition = None
    skippable: bool = False

    _id = field_validator("id")(_check_id)

    @field_validator("marker")
    @classmethod
    def _marker_path(cls, value: str) -> str:
        try:
            parse_path(value)
        except InvalidKey as e:
            raise ValueError(str(e)) from None
        return value

    @model_validator(mode="after")
    def _options_match_type(self) -> Step:
        if self.type in ("choice", "multi") and not self.options:
            raise ValueError(f"@type: step {self.id!r}: a {self.type} step needs options")
        if self.type == "text" and self.options:
            raise ValueError(f"@options: step {self.id!r}: a text step takes no options")
        values = [str(o.value) for o in self.options]
        for i, value in enumerate(values):
            if value in values[:i]:
                raise ValueError(f"@options.{i}: step {self.id!r}: option value {value!r} repeats")
        return self


class Start(_Strict):
    commands: list[str] = Field(default_factory=list)
    deep_links: list[str] = Field(default_factory=list)

    @field_validator("commands")
    @classmethod
    def _commands(cls, value: list[str]) -> list[str]:
        out = []
        for c in value:
            c = c.lstrip("/")
            if not _COMMAND.match(c):
                raise ValueError(f"bad command {c!r}: use a-z, 0-9 and _")
            out.append(c)
        return out

    @field_validator("deep_links")
    @classmethod
    def _payloads(cls, value: list[str]) -> list[str]:
        for p in value:
            if not is_start_payload(p):
                raise ValueError(f"bad deep-link payload {p!r}: 1-64 of A-Z a-z 0-9 _ -")
        return value


class Flow(_Strict):
    id: str
    title: str | None = None
    start: Start = Field(default_factory=Start)
    when: OptCondition = None
    repeat: bool = False
    intro: str | None = Field(default=None, max_length=4000)
    steps: list[Step] = Field(min_length=1, max_length=50)
    done: str | None = Field(default=None, max_length=4000)

    _id = field_validator("id")(_check_id)

    @model_validator(mode="after")
    def _unique_steps(self) -> Flow:
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            if step.id in seen:
                raise ValueError(f"@steps.{i}.id: flow {self.id!r}: step id {step.id!r} repeats")
            seen.add(step.id)
        return self

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def index(self, step_id: str) -> int:
        return next((i for i, s in enumerate(self.steps) if s.id == step_id), -1)


class ScenarioFile(_Strict):
    flows: list[Flow] = Field(default_factory=list)
    ai_sessions: list[AIMode] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _unique(self) -> ScenarioFile:
        ids: set[str] = set()
        triggers: dict[str, str] = {}
        for i, flow in enumerate(self.flows):
            if flow.id in ids:
                raise ValueError(f"@flows.{i}.id: flow id {flow.id!r} repeats")
            ids.add(flow.id)
            for trig in [f"/{c}" for c in flow.start.commands if c != "start"] + [
                f"deep link {p}" for p in flow.start.deep_links
            ]:
                if trig in triggers:
                    raise ValueError(
                        f"@flows.{i}.start: {trig} starts both {triggers[trig]!r} and {flow.id!r}"
                    )
                triggers[trig] = flow.id
        modes: set[str] = set()
        for i, mode in enumerate(self.ai_sessions):
            if mode.id in modes:
                raise ValueError(f"@ai_sessions.{i}.id: mode id {mode.id!r} repeats")
            modes.add(mode.id)
            for trig in [f"/{c}" for c in mode.start.commands + mode.end.commands] + [
                f"deep link {p}" for p in mode.start.deep_links
            ]:
                if trig in triggers:
                    raise ValueError(
                        f"@ai_sessions.{i}.start: {trig} is used by both "
                        f"{triggers[trig]!r} and {mode.id!r}"
                    )
                triggers[trig] = mode.id
        return self

    def flow(self, flow_id: str) -> Flow | None:
        return next((f for f in self.flows if f.id == flow_id), None)

    def mode(self, mode_id: str) -> AIMode | None:
        return next((m for m in self.ai_sessions if m.id == mode_id), None)


def parse_scenarios(data: Any, source: str = "scenarios") -> ScenarioFile:
    if data is None:
        data = {}
    if isinstance(data, list):  # a bare list of flows
        from relove.conversation.yamlfile import LineDict

        wrapped = LineDict(flows=data)
        wrapped.key_lines = {"flows": getattr(data, "line", 1)}
        data = wrapped
    return validate(ScenarioFile, data, source)


def load_scenarios(path: Path) -> ScenarioFile:
    """Read and validate a scenario file or raise ``DefinitionError`` naming line and reason."""
    data, source = read_yaml_file(path)
    parsed = parse_scenarios(data, source)
    if parsed.ai_sessions:
        modes = resolve_personas(parsed.ai_sessions, Path(path).parent, data, source)
        parsed = parsed.model_copy(update={"ai_sessions": modes})
    return parsed
