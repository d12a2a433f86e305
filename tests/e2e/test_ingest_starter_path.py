"""The starter data path end to end, through the real commands: `dataplatform generate --send`
-> ingestor (Postgres outbox) -> `dataplatform run exporter` -> bronze Delta on S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deltalake import DeltaTable

from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.settings import PostgresSettings, S3Settings
from fastapi_app.testing import (
    create_api_key,
    free_port,
    live_ingestor,
    temporary_schema,
)

CLI = str(Path(sys.executable).parent / "dataplatform")


@pytest.fixture
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


@pytest.fixture
def lake_prefix(s3_settings: S3Settings) -> Iterator[str]:
    prefix = f"tests/{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix(s3_settings, prefix)


def _bronze_ids(s3: S3Settings, prefix: str, path: str) -> set[str]:
    uri = s3.lake_uri(f"{prefix}/{path}")
    options = s3.delta_storage_options()
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return set()
    table = DeltaTable(uri, storage_options=options)
    return set(table.to_pyarrow_table(columns=["ingest_id"]).column("ingest_id").to_pylist())


def test_generated_records_reach_bronze_through_the_running_exporter(
    postgres_settings: PostgresSettings, s3_settings: S3Settings, schema: str, lake_prefix: str
) -> None:
    env = {"INGESTOR_SINK": "postgres", "INGEST_DB_SCHEMA": schema}
    key = create_api_key(postgres_settings, schema)
    metrics_port = free_port()
    exporter_env = {
        **os.environ,
        "INGEST_DB_SCHEMA": schema,
        "LAKEHOUSE_LAKE_PREFIX": lake_prefix,
        "EXPORTER_METRICS_PORT": str(metrics_port),
        "EXPORTER_POLL_INTERVAL_S": "0.5",
    }
    exporter = subprocess.Popen([CLI, "run", "exporter"], env=exporter_env, stderr=subprocess.PIPE)
    try:
        with live_ingestor(env) as live:
            sent = subprocess.run(
                [
                    CLI,
                    "generate",
                    "--count",
                    "60",
                    "--invalid",
                    "0.2",
                    "--seed",
                    "7",
                    "--send",
                    "--batch-size",
                    "10",
                    "--url",
                    live.url,
                    "--api-key",
                    key,
                ],
                capture_output=True,
                check=True,
                timeout=120,
            )
            summary = json.loads(sent.stdout)["entities"]
            single = subprocess.run(
                [
                    CLI,
                    "generate",
                    "--count",
                    "4",
                    "--naive-timestamps",
                    "--send",
                    "--url",
                    live.url,
                    "--api-key",
                    key,
                ],
                capture_output=True,
                check=True,
                timeout=120,
            )
            single_summary = json.loads(single.stdout)["entities"]
        accepted = {
            name: summary[name]["accepted"] + single_summary[name]["accepted"]
            for name in ("transactions", "claims")
        }
        assert summary["transactions"]["rejected"] + summary["claims"]["rejected"] > 0
        assert accepted["transactions"] > 0 and accepted["claims"] > 0

        deadline = time.monotonic() + 120
        while True:
            counts = {
                "transactions": len(
                    _bronze_ids(s3_settings, lake_prefix, TRANSACTIONS.table_path("bronze"))
                ),
                "claims": len(_bronze_ids(s3_settings, lake_prefix, CLAIMS.table_path("bronze"))),
            }
            if counts == accepted:
                break
            assert exporter.poll() is None, "the exporter died"
            assert time.monotonic() < deadline, f"bronze has {counts}, expected {accepted}"
            time.sleep(0.5)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert 'exporter_rows_total{entity="finance.transactions"}' in metrics
    finally:
        exporter.send_signal(signal.SIGTERM)
        try:
            exporter.wait(timeout=30)
        except subprocess.TimeoutExpired:
            exporter.kill()
            exporter.wait(timeout=10)
    assert exporter.returncode == 0
