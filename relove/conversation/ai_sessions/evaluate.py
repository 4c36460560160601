"""``relove conversation eval FILE``: scripted dialogues with the results they should give, run
through the same extraction as the bot against the configured model; accuracy per field.

```yaml
mode: diagnostic                 # a mode of the scenario file
cases:
  - id: restless
    dialogue:
      - assistant: Расскажи, что привело тебя сюда?
      - user: Работа давно не радует, всё чаще думаю уйти и делать своё.
    expect:
      journey_stage: Зов к приключению
      recommendations: [spring_stream]   # ids, when the mode recommends
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relove.conversation.ai_sessions.extract import Ask, extract
from relove.conversation.ai_sessions.modes import RECOMMENDATIONS, AIMode
from relove.conversation.catalog import Catalog
from relove.conversation.yamlfile import DefinitionError, read_yaml_file, validate


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=60)
    dialogue: list[dict[str, str]] = Field(min_length=1, max_length=200)
    expect: dict[str, Any] = Field(min_length=1)

    @field_validator("dialogue")
    @classmethod
    def _turns(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for turn in value:
            if len(turn) != 1 or next(iter(turn)) not in ("user", "assistant"):
                raise ValueError("each turn is {user: text} or {assistant: text}")
        return value


class EvalFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str
    cases: list[Case] = Field(min_length=1, max_length=500)


@dataclass
class CaseResult:
    id: str
    valid: bool
    repaired: bool
    errors: list[str]
    mismatches: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field: (want, got)


@dataclass
class Report:
    cases: list[CaseResult]
    fields: dict[str, tuple[int, int]]  # field: (correct, total)


def load_eval(path: Path, modes: dict[str, AIMode]) -> tuple[EvalFile, AIMode]:
    data, source = read_yaml_file(path)
    spec: EvalFile = validate(EvalFile, data, source)
    mode = modes.get(spec.mode)
    if mode is None:
        known = ", ".join(sorted(modes)) or "none"
        raise DefinitionError(f"mode: no AI mode {spec.mode!r} (known: {known})", source=source)
    fields = set(mode.result) | ({RECOMMENDATIONS} if mode.recommend else set())
    for case in spec.cases:
        for name in case.expect:
            if name not in fields:
                raise DefinitionError(
                    f"cases.{case.id}.expect: {name!r} is not a result field of {mode.id!r}",
                    source=source,
                )
    return spec, mode


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, list):
        return sorted(str(_norm(v)) for v in value)
    return value


def _same(name: str, want: Any, got: Any) -> bool:
    if name == RECOMMENDATIONS and isinstance(got, list):
        got = [r["id"] for r in got]
    return bool(_norm(want) == _norm(got))


async def run_eval(ask: Ask, spec: EvalFile, mode: AIMode, catalog: Catalog) -> Report:
    results: list[CaseResult] = []
    fields: dict[str, list[int]] = {}
    for case in spec.cases:
        history = [(role, text) for turn in case.dialogue for role, text in turn.items()]
        got = await extract(ask, mode, history, list(catalog.items),
                            recommending=mode.recommend is not None)  # fmt: skip
        outcome = CaseResult(case.id, got.result is not None, bool(got.errors), got.errors)
        for name, want in case.expect.items():
            tally = fields.setdefault(name, [0, 0])
            tally[1] += 1
            value = got.result.get(name) if got.result is not None else None
            if got.result is not None and _same(name, want, value):
                tally[0] += 1
            else:
                outcome.mismatches[name] = (want, value)
        results.append(outcome)
    return Report(results, {k: (v[0], v[1]) for k, v in fields.items()})
