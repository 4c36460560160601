"""schemathesis against the live ASGI app (both databases): generated requests for every
operation — valid and invalid — get no 5xx and no response that breaks the OpenAPI document.

The number of examples per operation is bounded (``EXAMPLES``) to keep the suite's budget; a
longer run: ``RELOVE_FUZZ_EXAMPLES=200 pytest tests/api/test_fuzz.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from relove.api.app import create_app
from relove.api.ratelimit import MemoryRateLimiter
from relove.db.engine import create_engine, create_session_factory
from tests.api.conftest import add_users, api_settings

EXAMPLES = int(os.environ.get("RELOVE_FUZZ_EXAMPLES", "3"))
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance",
          "negative_data_rejection")  # fmt: skip


@pytest.fixture
async def seeded(db, session_factory) -> None:
    await add_users(session_factory, *({"id": i, "markers": {"city": "Москва", "n": i}}
                                       for i in range(1, 6)))  # fmt: skip


@pytest.fixture
def api_schema(seeded: None, database_url: str, admin_headers: dict[str, str]) -> Iterator[Any]:
    # The app runs on schemathesis' own event loop: it gets an engine of its own, disposed
    # there when its lifespan ends.
    engine = create_engine(database_url)
    app = create_app(api_settings(database_url), engine, create_session_factory(engine),
                     limiter=MemoryRateLimiter(), closers=[engine.dispose])  # fmt: skip
    config = SchemathesisConfig.from_dict({
        "headers": admin_headers,
        "generation": {"max-examples": EXAMPLES, "database": "none", "deterministic": True},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    })  # fmt: skip
    yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)
    shutdown_lifespans()


def _run(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def check(case: Any) -> None:
        case.call_and_validate()

    check()


def test_api_conforms_to_its_document(api_schema: Any) -> None:
    # One loop rather than schemathesis' pytest plugin (its lazy mode needs pytest < 9).
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no input)
            except Exception as e:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode.value}): {e}")
    assert not failures, "\n\n".join(failures)
