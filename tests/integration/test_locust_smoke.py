"""The maintained locustfile, headless, against a live ingestor on the real Kafka: no failure."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplatform.settings import PostgresSettings
from fastapi_app.testing import LiveIngestor, create_api_key, live_ingestor

ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).parent / "locust"
SEED_TASKS = {"/ingest-financial-transaction", "/ingest-insurance-claim"}
EVERY_TASK = SEED_TASKS | {"/v1/transactions/batch", "/ingest/{ingest_id}"}


@pytest.fixture(scope="module")
def ingestor(kafka_ingestor_env: dict[str, str]) -> Iterator[LiveIngestor]:
    with live_ingestor(kafka_ingestor_env) as live:
        yield live


def test_locustfile_headless_run_has_no_failure(
    ingestor: LiveIngestor, postgres_settings: PostgresSettings, ingest_schema: str, tmp_path: Path
) -> None:
    key = create_api_key(postgres_settings, ingest_schema)
    run = subprocess.run(
        [
            str(LOCUST),
            "-f",
            str(ROOT / "benchmarks" / "locustfile.py"),
            "--headless",
            "--users=4",
            "--spawn-rate=4",
            "--run-time=20s",
            f"--host={ingestor.url}",
            f"--csv={tmp_path / 'run'}",
            "--only-summary",
        ],
        env={**os.environ, "INGESTOR_API_KEY": key},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with (tmp_path / "run_stats.csv").open(newline="") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    assert rows.keys() >= EVERY_TASK, sorted(rows)
    for name in EVERY_TASK:
        assert int(rows[name]["Request Count"]) > 0, name
        assert int(rows[name]["Failure Count"]) == 0, (name, run.stderr[-3000:])
    assert int(rows["Aggregated"]["Failure Count"]) == 0
