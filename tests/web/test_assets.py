"""Vendored assets match their manifest and pins; pages load nothing from elsewhere; every text
a template or route asks for exists in Russian and English."""

from __future__ import annotations

import json
import re
from pathlib import Path

from relove.web.texts import ConsoleTexts
from relove.web.vendor import ASSETS, MANIFEST, VENDOR_DIR, sha256_of

WEB = Path(__file__).parents[2] / "relove" / "web"


def test_vendored_files_match_the_manifest_and_pins() -> None:
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    pinned = {(a.package, a.version, name) for a in ASSETS for name in a.files.values()}
    assert {(m["package"], m["version"], m["file"]) for m in manifest} == pinned
    for entry in manifest:
        path = VENDOR_DIR / entry["file"]
        assert entry["version"] in entry["file"]
        assert sha256_of(path) == entry["sha256"], entry["file"]
    assert {p.name for p in VENDOR_DIR.iterdir()} == {m["file"] for m in manifest} | {
        MANIFEST.name}


def test_templates_load_nothing_from_another_site() -> None:
    for path in (WEB / "templates").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        for url in re.findall(r'(?:src|href)="(https?:[^"]+)"', text):
            assert url.startswith("https://telegram.org/js/telegram-widget.js"), (path, url)
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path  # no inline script
        assert "hx-on" not in text and "javascript:" not in text, path


def test_every_text_exists_in_both_languages() -> None:
    ru, en = ConsoleTexts.load("ru"), ConsoleTexts.load("en")
    assert ru.keys() == en.keys()
    sources = [p.read_text(encoding="utf-8") for p in
               [*(WEB / "templates").glob("*.html"), *WEB.rglob("*.py")]]
    used = set()
    prefixes = set()
    for text in sources:
        used |= set(re.findall(r"""\bt\(\s*['"]([a-z_.]+[a-z_])['"]""", text))
        used |= set(re.findall(r"""texts_for\(request\)\(\s*['"]([a-z_.]+)['"]""", text))
        prefixes |= set(re.findall(r"""\bt\(\s*['"]([a-z_.]+\.)['"]\s*~""", text))
    assert used and not used - ru.keys()
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in ru.keys()), prefix
