"""The console's third-party browser assets, vendored into the package at pinned versions.

Nothing is loaded from a CDN and no Node toolchain is needed: the files are committed under
``relove/web/static/vendor/`` with their version in the name. To refresh them (e.g. after
changing a pin below), run ``python -m relove.web.vendor``: it downloads each package's tarball
from the npm registry, checks it against the registry's published SHA-512 integrity, extracts
the listed files and rewrites ``static/vendor/MANIFEST.json`` (name, version, file, SHA-256),
which a test compares with the files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
MANIFEST = VENDOR_DIR / "MANIFEST.json"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    #: path inside the package tarball → file name under static/vendor/
    files: dict[str, str]


ASSETS = [
    Asset("htmx.org", "2.0.11", {"package/dist/htmx.min.js": "htmx-2.0.11.min.js"}),
    Asset("uplot", "1.6.32", {
        "package/dist/uPlot.iife.min.js": "uplot-1.6.32.min.js",
        "package/dist/uPlot.min.css": "uplot-1.6.32.min.css",
    }),
]


def asset_names() -> dict[str, str]:
    """Short name → vendored file name (what the templates link to)."""
    return {
        "htmx": ASSETS[0].files["package/dist/htmx.min.js"],
        "uplot_js": ASSETS[1].files["package/dist/uPlot.iife.min.js"],
        "uplot_css": ASSETS[1].files["package/dist/uPlot.min.css"],
    }


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - fixed https URL
        return bytes(resp.read())


def fetch(asset: Asset) -> dict[str, bytes]:
    meta = json.loads(_get(f"{REGISTRY}/{asset.package}/{asset.version}"))
    tarball = _get(meta["dist"]["tarball"])
    algo, _, expected = meta["dist"]["integrity"].partition("-")
    if algo != "sha512" or base64.b64encode(hashlib.sha512(tarball).digest()).decode() != expected:
        raise RuntimeError(f"{asset.package}@{asset.version}: tarball integrity mismatch")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for inner, name in asset.files.items():
            member = tar.extractfile(inner)
            if member is None:
                raise RuntimeError(f"{asset.package}@{asset.version}: {inner} missing")
            out[name] = member.read()
    return out


def refresh() -> None:
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    manifest = []
    wanted = set()
    for asset in ASSETS:
        for name, data in fetch(asset).items():
            (VENDOR_DIR / name).write_bytes(data)
            wanted.add(name)
            manifest.append({"package": asset.package, "version": asset.version, "file": name,
                             "sha256": hashlib.sha256(data).hexdigest()})
            log.info("vendored %s@%s → %s", asset.package, asset.version, name)
    for old in VENDOR_DIR.iterdir():
        if old.name not in wanted and old.name != MANIFEST.name:
            old.unlink()
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    refresh()
