"""The console's texts, from editable YAML files: Russian first (ru.yaml), English alongside.

Keys are nested in the files and flattened to dotted names (``nav.audience``). A
``console.<lang>.yaml`` in ``RELOVE_TEXTS_DIR`` overrides shipped keys. Values are plain text:
templates escape them like any other value (no markup in texts).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from relove.errors import ConfigError

log = logging.getLogger(__name__)
SHIPPED_DIR = Path(__file__).parent
LANGUAGES = ("ru", "en")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, str):
            out[name] = value
        else:
            raise ConfigError(f"console text {name!r} must be a string")
    return out


def _load(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read texts file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"texts file {path} must map keys to strings")
    return _flatten(data)


class ConsoleTexts:
    def __init__(self, texts: dict[str, str], language: str) -> None:
        self._texts = texts
        self.language = language

    @classmethod
    def load(cls, language: str = "ru", override_dir: Path | None = None) -> ConsoleTexts:
        lang = language if language in LANGUAGES else "ru"
        texts = _load(SHIPPED_DIR / "ru.yaml")
        if lang != "ru":
            texts.update(_load(SHIPPED_DIR / f"{lang}.yaml"))
        if override_dir is not None:
            override = Path(override_dir) / f"console.{lang}.yaml"
            if override.exists():
                texts.update(_load(override))
        return cls(texts, lang)

    def __call__(self, key: str, /, **values: Any) -> str:
        template = self._texts.get(key)
        if template is None:
            log.error("missing console text %r", key)
            return key
        return template.format_map(values) if values else template

    def keys(self) -> set[str]:
        return set(self._texts)
