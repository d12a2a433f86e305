"""The API docs as a person sees them: /docs and /redoc rendered by headless Chromium with no
network but loopback, so a CDN asset would leave the page blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplatform.settings import PostgresSettings
from fastapi_app.testing import LiveIngestor, live_ingestor, temporary_schema

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but the ingestor is reachable: an asset from a CDN fails to load.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,2400",
    "--virtual-time-budget=15000",
]
SEED_PATHS = ("/ingest-financial-transaction/", "/ingest-insurance-claim/")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(found).exists(), "chromium is missing: ./run_tests.sh installs it"
    return found


@pytest.fixture(scope="module")
def ingestor(postgres_settings: PostgresSettings) -> Iterator[LiveIngestor]:
    with (
        temporary_schema(postgres_settings) as schema,
        live_ingestor({"INGESTOR_SINK": "kafka", "INGEST_DB_SCHEMA": schema}) as live,
    ):
        yield live


def _render(chromium: str, url: str, tmp_path: Path, *extra: str) -> str:
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_swagger_ui_renders_the_seed_operations_offline(
    chromium: str, ingestor: LiveIngestor, tmp_path: Path
) -> None:
    dom = _render(chromium, f"{ingestor.url}/docs", tmp_path, "--dump-dom")
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert set(SEED_PATHS) <= rendered, f"operations rendered: {sorted(rendered)}"
    assert "Financial/Insurance Data Ingestor API" in dom
    shot = tmp_path / "docs.png"
    _render(chromium, f"{ingestor.url}/docs", tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000  # a blank page is a few kilobytes


def test_redoc_renders_the_seed_operations_offline(
    chromium: str, ingestor: LiveIngestor, tmp_path: Path
) -> None:
    dom = _render(chromium, f"{ingestor.url}/redoc", tmp_path, "--dump-dom")
    for path in SEED_PATHS:
        assert path in dom
    assert "redoc" in dom.lower()
