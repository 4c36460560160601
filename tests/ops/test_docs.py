"""docs/operations.md lists every metric the product exposes."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_metric_is_documented() -> None:
    import relove.ops.metrics  # noqa: F401 - registers the collectors

    text = DOC.read_text(encoding="utf-8")
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("relove_")}
    assert len(names) >= 15
    for name in sorted(names):
        metric = next(m for m in REGISTRY.collect() if m.name == name)
        shown = f"{name}_total" if metric.type == "counter" else name
        assert f"`{shown}`" in text, f"{shown} is missing from docs/operations.md"
