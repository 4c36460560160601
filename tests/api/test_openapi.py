"""The committed OpenAPI document (docs/openapi.json) is the app's own: regenerate it with
``relove serve --print-openapi > docs/openapi.json`` after changing a route."""

from __future__ import annotations

import json
from pathlib import Path

from relove.api.openapi import document

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "relove serve --print-openapi > docs/openapi.json"


def test_committed_document_matches_the_app() -> None:
    current = document()
    assert current["openapi"].startswith("3.1")
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    now, then = current["paths"], committed["paths"]
    changed = sorted(
        f"{method.upper()} {path}"
        for path in set(now) | set(then)
        for method in set(now.get(path, {})) | set(then.get(path, {}))
        if now.get(path, {}).get(method) != then.get(path, {}).get(method)
    )
    assert current == committed, f"docs/openapi.json is stale {changed[:5]}: run `{REGENERATE}`"


def test_every_operation_documents_its_errors_and_scope() -> None:
    for path, item in document()["paths"].items():
        for method, op in item.items():
            assert {"401", "403", "422", "429"} <= set(op["responses"]), (method, path)
            if path != "/api/v1/me":
                assert "Scope: `" in op["description"], (method, path)


def test_the_regenerate_command_prints_the_committed_document(capsys) -> None:
    from relove.cli import main

    assert main(["serve", "--print-openapi"]) == 0
    out, _ = capsys.readouterr()
    assert out == COMMITTED.read_text(encoding="utf-8")
