"""`dataplatform apikey create|list|revoke` against the real Postgres and a live ingestor."""

from __future__ import annotations

import os
import random
import subprocess
import sys
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
