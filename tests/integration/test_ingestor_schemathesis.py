"""schemathesis against the live app and its own OpenAPI spec: no 5xx, no spec violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dataplatform.settings import PostgresSettings
from fastapi_app.testing import LiveIngestor, create_api_key, live_ingestor

#: Operations that take no input at all: no negative case exists for them.
INPUTLESS = {"/", "/health", "/ready", "/metrics"}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx: Any, value: Any) -> bytes:
    # The spec types an NDJSON body as a string: send it as is.
    return value.encode() if isinstance(value, str) else bytes(str(value), "utf-8")


@pytest.fixture(scope="module")
def ingestor(kafka_ingestor_env: dict[str, str]) -> Iterator[LiveIngestor]:
    with live_ingestor({**kafka_ingestor_env, "INGESTOR_LOG_REQUESTS": "false"}) as live:
        yield live


@pytest.fixture(scope="module")
def api_key(postgres_settings: PostgresSettings, ingest_schema: str) -> str:
    return create_api_key(postgres_settings, ingest_schema)


def _operations(url: str) -> list[Any]:
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]


#: Examples per operation, mode and seed: two seeds explore different inputs.
EXAMPLES = 200


@pytest.mark.parametrize("fuzz_seed", [20261130, 4242])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_live_api_conforms_to_its_openapi_spec(
    ingestor: LiveIngestor, api_key: str, mode: GenerationMode, fuzz_seed: int
) -> None:
    # Cases come from each operation's strategy under plain hypothesis: schemathesis's own
    # pytest plugin (`schema.parametrize`) does not run under pytest 9.
    operations = _operations(ingestor.url)
    assert len(operations) == 11  # with the two document routes
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.path in INPUTLESS:
            continue  # nothing to make invalid

        @seed(fuzz_seed)
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=ingestor.url, headers={"X-API-Key": api_key}, checks=CHECKS, timeout=30
            )

        check()
