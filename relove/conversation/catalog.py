"""The recommendation catalog (the community's streams, events, materials) and its ranking.

```yaml
items:
  - id: spring_stream
    title: Весенний поток
    text: Шесть недель практик …
    url: https://example.org/spring
    tags: [meditation, psychology]
    when: city = "Москва"          # optional, segment language
```

Ranking for a user: items whose ``when`` holds, scored by how many tags overlap the user's
``markers.interests``; items shown recently (``context.recommended``, newest last) go behind
fresh ones, the least recently shown first — so repeated ``/recommend`` rotates.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from relove.conversation.conditions import Condition, condition_or_none
from relove.conversation.yamlfile import LineDict, read_yaml_file, validate

log = logging.getLogger(__name__)


class CatalogItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    title: str = Field(min_length=1, max_length=200)
    text: str | None = Field(default=None, max_length=3000)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    when: Annotated[Condition | None, BeforeValidator(condition_or_none)] = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [t.strip().casefold() for t in value if t.strip()]

    @model_validator(mode="after")
    def _has_content(self) -> CatalogItem:
        if not self.text and not self.url:
            raise ValueError(f"item {self.id!r} needs a text or a url")
        return self


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[CatalogItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        seen: set[str] = set()
        for i, item in enumerate(self.items):
            if item.id in seen:
                raise ValueError(f"@items.{i}.id: item id {item.id!r} repeats")
            seen.add(item.id)
        return self

    def get(self, item_id: str) -> CatalogItem | None:
        return next((i for i in self.items if i.id == item_id), None)


def parse_catalog(data: Any, source: str = "catalog") -> Catalog:
    if data is None:
        data = {}
    if isinstance(data, list):
        wrapped = LineDict(items=data)
        wrapped.key_lines = {"items": getattr(data, "line", 1)}
        data = wrapped
    return validate(Catalog, data, source)


def load_catalog(path: Path) -> Catalog:
    data, source = read_yaml_file(path)
    return parse_catalog(data, source)


def _interests(markers: dict[str, Any]) -> set[str]:
    raw = markers.get("interests")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return set()
    return {str(v).strip().casefold() for v in raw if str(v).strip()}


def rank(catalog: Catalog, user: dict[str, Any], *, k: int) -> list[CatalogItem]:
    """Up to ``k`` items for ``user`` (a ``User.to_dict()``-shaped dict with fresh documents)."""
    interests = _interests(user.get("markers") or {})
    shown = (user.get("context") or {}).get("recommended") or []
    # Position in the recently-shown list: higher = shown more recently.
    recency = {str(item_id): pos for pos, item_id in enumerate(shown)} if isinstance(
        shown, list
    ) else {}
    eligible = []
    for order, item in enumerate(catalog.items):
        if item.when is not None:
            try:
                if not item.when.matches(user):
                    continue
            except Exception:  # a condition that cannot be evaluated: skip, but say so
                log.exception("catalog item %s: condition failed", item.id)
                continue
        overlap = len(interests & set(item.tags))
        was_shown = item.id in recency
        # Fresh items first; among fresh by overlap; among shown, the least recent first.
        key = (was_shown, recency.get(item.id, -1), -overlap, order)
        eligible.append((key, item))
    eligible.sort(key=lambda pair: pair[0])
    return [item for _, item in eligible[:k]]


class CatalogRegistry:
    """The active catalog, reloadable; a broken file keeps the previous one."""

    def __init__(self, path: Path | None = None, catalog: Catalog | None = None) -> None:
        self.path = Path(path) if path else None
        self.current = catalog or Catalog()

    @classmethod
    def from_file(cls, path: Path | None) -> CatalogRegistry:
        registry = cls(path)
        if path is not None:
            registry.current = load_catalog(Path(path))
        return registry

    def reload(self) -> Catalog:
        if self.path is None:
            return self.current
        self.current = load_catalog(self.path)
        log.info("catalog reloaded from %s: %d items", self.path, len(self.current.items))
        return self.current
