"""The bot's own texts, from editable YAML files (Russian first, English alongside).

Shipped files live beside this module; ``RELOVE_TEXTS_DIR`` may hold a ``<lang>.yaml`` whose keys
override the shipped ones (e.g. a community's own welcome text). Every value substituted into a
text is HTML-escaped, so user-supplied names can never break or inject Telegram markup.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import yaml

from relove.errors import ConfigError

log = logging.getLogger(__name__)
SHIPPED_DIR = Path(__file__).parent


def _load(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read texts file {path}: {e}") from e
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(f"texts file {path} must map keys to strings")
    return data


class Texts:
    def __init__(self, texts: dict[str, str], language: str) -> None:
        self._texts = texts
        self.language = language

    @classmethod
    def load(cls, language: str = "ru", override_dir: Path | None = None) -> Texts:
        shipped = SHIPPED_DIR / f"{language}.yaml"
        if not shipped.exists():
            raise ConfigError(f"RELOVE_LANGUAGE: no texts for language {language!r}")
        texts = _load(SHIPPED_DIR / "ru.yaml") if language != "ru" else {}
        texts.update(_load(shipped))
        if override_dir is not None:
            override = Path(override_dir) / f"{language}.yaml"
            if override.exists():
                texts.update(_load(override))
        return cls(texts, language)

    def __call__(self, key: str, /, **values: Any) -> str:
        """The text ``key`` with ``{name}`` placeholders filled by HTML-escaped ``values``."""
        template = self._texts.get(key)
        if template is None:
            log.error("missing text %r", key)
            return key
        escaped = {k: html.escape(str(v), quote=False) for k, v in values.items()}
        return template.format_map(escaped)

    def raw(self, key: str) -> str:
        return self._texts.get(key, key)

    def __contains__(self, key: str) -> bool:
        return key in self._texts
