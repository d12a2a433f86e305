"""`dataplatform apikey create|list|revoke` against the real Postgres and a live ingestor."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataplatform import samples
from dataplatform.settings import PostgresSettings
from fastapi_app.testing import live_ingestor, temporary_schema

CLI = str(Path(sys.executable).parent / "dataplatform")


@pytest.fixture
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


def _cli(schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INGEST_DB_SCHEMA": schema, "COLUMNS": "200"}
    return subprocess.run(
        [CLI, "apikey", *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_created_key_works_and_revoked_key_is_refused(schema: str) -> None:
    created = _cli(schema, "create", "--name", "it-client", "--quiet")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = key.split("_")[1]

    listed = _cli(schema, "list")
    assert key_id in listed.stdout
    assert "it-client" in listed.stdout
    assert key.split("_")[2] not in listed.stdout  # the secret is never shown again

    env = {
        "INGESTOR_SINK": "kafka",
        "INGEST_DB_SCHEMA": schema,
        "INGESTOR_API_KEY_CACHE_TTL_S": "0",
    }
    with live_ingestor(env) as live:
        url = f"{live.url}/ingest-financial-transaction/"
        record = samples.transaction(random.Random())
        assert httpx.post(url, json=record, headers={"X-API-Key": key}).status_code == 200
        revoked = _cli(schema, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        response = httpx.post(url, json=record, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]
    assert _cli(schema, "revoke", key_id).returncode == 1


def _records_total(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ingestor_records_total{")
    )


def test_workers_together_hold_a_keys_rate_limit_and_report_every_record(schema: str) -> None:
    # 10 requests/s for the key, two workers: each admits 5/s after a burst of 1.
    created = _cli(schema, "create", "--name", "it-workers", "--rate-limit", "10", "--quiet")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    env = {
        "INGESTOR_SINK": "kafka",
        "INGEST_DB_SCHEMA": schema,
        "INGESTOR_WORKERS": "2",
        "INGESTOR_RATE_LIMIT_BURST": "2",
    }
    rng = random.Random()
    with live_ingestor(env) as live:
        workers = Path(f"/proc/{live.process.pid}/task/{live.process.pid}/children").read_text()
        url = f"{live.url}/ingest-financial-transaction/"
        started = time.monotonic()
        codes = []
        for _ in range(60):
            # A new connection per request: the kernel hands them to either worker.
            with httpx.Client(headers={"X-API-Key": key}) as client:
                codes.append(client.post(url, json=samples.transaction(rng)).status_code)
        elapsed = time.monotonic() - started
        scrapes = [_records_total(httpx.get(f"{live.url}/metrics").text) for _ in range(6)]
    assert set(codes) <= {200, 429}
    assert len(workers.split()) >= 2, workers
    admitted = codes.count(200)
    # Never more than the key's limit over the whole run, whichever worker took each request.
    assert 0 < admitted <= 10 * elapsed + 2, (admitted, elapsed)
    # Every scrape counts the records of both workers, whichever worker answers it.
    assert scrapes == [admitted] * len(scrapes)
