"""Reading /metrics the way Prometheus does: the text exposition, parsed by prometheus-client."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from relove.ops.endpoints import Endpoints


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def scrape(endpoints: Endpoints) -> str:
    answer = await endpoints.answer("/metrics")
    assert answer.status == 200
    return answer.body.decode()
