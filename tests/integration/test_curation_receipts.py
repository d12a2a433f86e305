"""`GET /ingest/{id}` of a record curation quarantined, on the real path: the ingestor (starter
track) -> the Postgres outbox -> the lake exporter -> bronze -> a curation run on Spark that
reports its progress to the real PostgreSQL. A record a `drop` expectation refuses says so with
the quarantine table's reason, never `curated`; a good one of the same run says `curated`; and a
report missed while PostgreSQL was down is made up, quarantined records included, by the next
run (one with nothing new, which needs no Spark)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pyspark.sql import SparkSession

from dataplatform.contracts import TRANSACTIONS
from dataplatform.db.progress import ProgressWriter
from dataplatform.exporter import LakeExporter
from dataplatform.lake import Lake
from dataplatform.settings import ExporterSettings, PostgresSettings
from fastapi_app.app.core.progress_cache import TTL_S
from fastapi_app.testing import create_api_key, free_port, live_ingestor, temporary_schema
from pyspark_jobs import curation, quality
from tests.factories import transaction
from tests.integration.lakehouse_support import delta_rs_rows, lake, lake_spark

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TX = "/ingest-financial-transaction/"
#: An event more than a day after it was accepted: the `drop` expectation
#: `event_time_not_in_future` refuses it; the API and the exporter take it.
FUTURE = "2099-01-01T00:00:00"


@pytest.fixture(scope="module")
def schema(postgres_settings: PostgresSettings) -> Iterator[str]:
    with temporary_schema(postgres_settings) as name:
        yield name


@pytest.fixture(scope="module")
def http(postgres_settings: PostgresSettings, schema: str) -> Iterator[httpx.Client]:
    """A live starter-track ingestor on the module's schema, with a key of its own."""
    with live_ingestor({"INGESTOR_SINK": "postgres", "INGEST_DB_SCHEMA": schema}) as live:
        key = create_api_key(postgres_settings, schema)
        with httpx.Client(base_url=live.url, headers={"X-API-Key": key}, timeout=30) as client:
            yield client


@pytest.fixture(scope="module")
def reference(lake_spark: SparkSession, postgres_settings: PostgresSettings) -> curation.Reference:
    return curation.read_reference(lake_spark, postgres_settings)


def _post(http: httpx.Client, **overrides: Any) -> str:
    response = http.post(TX, json=transaction(**overrides))
    assert response.status_code == 200, response.text
    return str(response.json()["ingest_id"])


def _export(postgres: PostgresSettings, schema: str, lake: Lake) -> None:
    settings = ExporterSettings().model_copy(update={"db_schema": schema})
    assert LakeExporter(postgres, lake, settings).export_once()


def _curate(
    spark: SparkSession, lake: Lake, reference: curation.Reference, progress: ProgressWriter
) -> curation.CurationResult:
    try:
        return curation.curate_entity(
            spark,
            lake,
            TRANSACTIONS,
            run_id=f"receipts-{uuid.uuid4().hex[:8]}",
            reference=reference,
            expectations=quality.load_expectations(TRANSACTIONS),
            reporting_currency="EUR",
            progress=progress,
        )
    finally:
        progress.close()


def _receipt(http: httpx.Client, ingest_id: str) -> dict[str, Any]:
    response = http.get(f"/ingest/{ingest_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _quarantine_reason(lake: Lake, ingest_id: str) -> str:
    """The reason curation wrote into its quarantine Delta table for the record."""
    [reason] = [
        row["reason"]
        for row in delta_rs_rows(lake, "quarantine/curation/finance/transactions")
        if row["ingest_id"] == ingest_id
    ]
    return str(reason)


def _assert_curated(receipt: dict[str, Any]) -> None:
    assert receipt["status"] == "curated", receipt
    assert receipt["quarantine_reason"] is None
    assert receipt["stages"][-1]["stage"] == "curated"
    assert receipt["stages"][-1]["where"] == "silver Delta table"


def _assert_quarantined_by_curation(receipt: dict[str, Any], reason: str) -> None:
    assert receipt["status"] == "landed", receipt
    assert receipt["quarantine_reason"] == reason
    stages = {stage["stage"]: stage["where"] for stage in receipt["stages"]}
    assert list(stages) == ["accepted", "durable", "landed", "curated"]
    assert stages["landed"].startswith("bronze Delta table")
    assert stages["curated"] == f"quarantine: {reason}"


def test_receipt_of_a_record_curation_quarantined_gives_the_reason_not_curated(
    http: httpx.Client,
    postgres_settings: PostgresSettings,
    schema: str,
    lake: Lake,
    lake_spark: SparkSession,
    reference: curation.Reference,
) -> None:
    good, bad = _post(http), _post(http, timestamp=FUTURE)
    _export(postgres_settings, schema, lake)
    assert _receipt(http, bad)["status"] == "landed"

    result = _curate(lake_spark, lake, reference, ProgressWriter(postgres_settings, schema))

    assert (result.rows_read, result.rows_quarantined) == (2, 1)
    reason = _quarantine_reason(lake, bad)
    assert "event_time_not_in_future" in reason
    _assert_curated(_receipt(http, good))
    _assert_quarantined_by_curation(_receipt(http, bad), reason)


def test_report_missed_while_postgres_was_down_is_made_up_with_the_quarantined_records(
    http: httpx.Client,
    postgres_settings: PostgresSettings,
    schema: str,
    lake: Lake,
    lake_spark: SparkSession,
    reference: curation.Reference,
) -> None:
    earlier = _post(http, timestamp=FUTURE)
    _export(postgres_settings, schema, lake)
    reported = _curate(lake_spark, lake, reference, ProgressWriter(postgres_settings, schema))
    good, bad = _post(http), _post(http, timestamp=FUTURE)
    _export(postgres_settings, schema, lake)
    # The run succeeds, but its report finds no PostgreSQL (nobody listens on the port).
    down = postgres_settings.model_copy(update={"port": free_port(), "connect_timeout_s": 2})
    result = _curate(lake_spark, lake, reference, ProgressWriter(down, schema))
    assert result.rows_quarantined == 1
    # What the missed report would have recorded: read back from the quarantine table, from
    # the end of the run that made the last report (not the earlier run's record).
    reason = _quarantine_reason(lake, bad)
    assert curation.quarantined_since(lake, TRANSACTIONS, reported.bronze_version_to) == [
        (bad, reason)
    ]
    assert {i for i, _ in curation.quarantined_since(lake, TRANSACTIONS, -1)} == {earlier, bad}
    time.sleep(TTL_S + 0.1)  # past the ingestor's progress cache
    assert [_receipt(http, i)["status"] for i in (good, bad)] == ["landed", "landed"]
    assert _receipt(http, bad)["quarantine_reason"] is None

    # The next scheduled run has nothing new: it reports without Spark, and records what the
    # missed report would have, read back from the quarantine table.
    progress = ProgressWriter(postgres_settings, schema)
    try:
        skipped = curation.skip_without_spark(lake, TRANSACTIONS, run_id="next", progress=progress)
    finally:
        progress.close()
    assert skipped is not None and skipped.noop
    time.sleep(TTL_S + 0.1)
    _assert_curated(_receipt(http, good))
    _assert_quarantined_by_curation(_receipt(http, bad), reason)
    _assert_quarantined_by_curation(_receipt(http, earlier), _quarantine_reason(lake, earlier))
