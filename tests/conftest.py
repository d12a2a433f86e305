"""Shared fixtures. Tiers are marked by folder: tests/unit -> `unit`, tests/integration ->
`integration`, tests/e2e -> `e2e` (run one tier with `pytest -m unit`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplatform.native import runtime
from dataplatform.native.services import Context, services_for
from dataplatform.settings import (
    KafkaSettings,
    PostgresSettings,
    S3Settings,
    Track,
    get_runtime_settings,
)
from fastapi_app.testing import temporary_schema

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def test_track() -> Track:
    """The track the integration suites run against (the fullest one built)."""
    return get_runtime_settings().track


@pytest.fixture(scope="session")
def platform(test_track: Track) -> Iterator[Context]:
    """The real native services of the track, started if they are not running.

    `./run_tests.sh` starts them before pytest and stops them after; running pytest by hand
    starts them here and leaves them running for the next run.
    """
    ctx = Context.load(test_track)
    if not all(service.probe(ctx) for service in services_for(test_track)):
        runtime.up(ctx, test_track)
    yield ctx


@pytest.fixture(scope="session")
def postgres_settings(platform: Context) -> PostgresSettings:
    return platform.postgres


@pytest.fixture(scope="session")
def kafka_settings(platform: Context) -> KafkaSettings:
    return platform.kafka


@pytest.fixture(scope="session")
def s3_settings(platform: Context) -> S3Settings:
    return platform.s3


@pytest.fixture(scope="module")
def ingest_schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    """A throwaway ingest schema (API keys, receipts) for one test module's own ingestor."""
    with temporary_schema(postgres_settings) as name:
        yield name


@pytest.fixture(scope="module")
def kafka_ingestor_env(ingest_schema: str) -> dict[str, str]:
    """The environment of an ingestor on the real Kafka over the module's ingest schema."""
    return {"INGESTOR_SINK": "kafka", "INGEST_DB_SCHEMA": ingest_schema}
