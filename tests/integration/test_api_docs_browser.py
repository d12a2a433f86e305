"""The API docs as a person sees them: /docs and /redoc rendered by headless Chromium with no
network but loopback (`tests.browser`), so a CDN asset would leave the page blank."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplatform.settings import PostgresSettings
from fastapi_app.testing import LiveIngestor, live_ingestor, temporary_schema
from tests.browser import chromium

SEED_PATHS = ("/ingest-financial-transaction/", "/ingest-insurance-claim/")


@pytest.fixture(scope="module")
def ingestor(postgres_settings: PostgresSettings) -> Iterator[LiveIngestor]:
    with (
        temporary_schema(postgres_settings) as schema,
        live_ingestor({"INGESTOR_SINK": "kafka", "INGEST_DB_SCHEMA": schema}) as live,
    ):
        yield live


def test_swagger_ui_renders_the_seed_operations_offline(
    ingestor: LiveIngestor, tmp_path: Path
) -> None:
    dom = chromium(tmp_path, f"{ingestor.url}/docs", "--dump-dom")
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert set(SEED_PATHS) <= rendered, f"operations rendered: {sorted(rendered)}"
    assert "Financial/Insurance Data Ingestor API" in dom
    shot = tmp_path / "docs.png"
    chromium(tmp_path, f"{ingestor.url}/docs", f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000  # a blank page is a few kilobytes


def test_redoc_renders_the_seed_operations_offline(ingestor: LiveIngestor, tmp_path: Path) -> None:
    dom = chromium(tmp_path, f"{ingestor.url}/redoc", "--dump-dom")
    for path in SEED_PATHS:
        assert path in dom
    assert "redoc" in dom.lower()
