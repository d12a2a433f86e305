"""From the topic to silver on the real Kafka, S3, Postgres and Spark: exact amounts, and the
latest version of a key decided by (event time, order token), the order landing read them in."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from dataplatform.contracts import CLAIMS, TRANSACTIONS, Entity
from dataplatform.settings import KafkaSettings, PostgresSettings
from pyspark_jobs import curation, quality
from pyspark_jobs.lake import Lake
from pyspark_jobs.landing import LandingOptions, run_landing
from tests.factories import claim, transaction
from tests.integration.lakehouse_support import (
    assert_engines_agree,
    kafka_topic,
    lake,
    lake_spark,
    produce,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def reference(lake_spark: SparkSession, postgres_settings: PostgresSettings) -> curation.Reference:
    return curation.read_reference(lake_spark, postgres_settings)


def _land_and_curate(
    spark: SparkSession,
    lake: Lake,
    reference: curation.Reference,
    prefix: str,
    entity: Entity,
    run_id: str,
    heartbeat: Path,
) -> curation.CurationResult:
    run_landing(
        spark,
        lake,
        [entity],
        LandingOptions(available_now=True, topic_prefix=prefix, heartbeat_path=heartbeat),
    )
    return curation.curate_entity(
        spark,
        lake,
        entity,
        run_id=run_id,
        reference=reference,
        expectations=quality.load_expectations(entity),
        reporting_currency="EUR",
    )


def test_topic_to_silver_amounts_keep_every_digit(
    lake_spark: SparkSession,
    lake: Lake,
    kafka_settings: KafkaSettings,
    reference: curation.Reference,
    tmp_path: Path,
) -> None:
    amounts = ["123456789012.123456", "0.000001", "999999999999.999999"]
    records = [transaction(currency="EUR", amount="@") for _ in amounts]
    # The raw JSON numbers, as a client sends them (json.dumps of a float would round them).
    payloads = [
        json.dumps(record).replace('"@"', amount).encode()
        for record, amount in zip(records, amounts, strict=True)
    ]
    prefix = f"t{uuid.uuid4().hex[:8]}."
    with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic) as topic:
        produce(kafka_settings, topic, payloads, key_field="transaction_id")
        _land_and_curate(
            lake_spark, lake, reference, prefix, TRANSACTIONS, "exact", tmp_path / "hb.json"
        )

    silver = assert_engines_agree(
        lake_spark, lake, "silver/finance/transactions", ["transaction_id"]
    )
    by_id = {row["transaction_id"]: row["amount"] for row in silver}
    assert by_id == {
        record["transaction_id"]: Decimal(amount)
        for record, amount in zip(records, amounts, strict=True)
    }


def test_topic_to_silver_equal_event_time_latest_offset_wins(
    lake_spark: SparkSession,
    lake: Lake,
    kafka_settings: KafkaSettings,
    reference: curation.Reference,
    tmp_path: Path,
) -> None:
    # Finding 2: 40 claims, each sent as [submitted, approved] with one timestamp; and
    # A -> B -> A with one timestamp over two runs (approved, rejected, then approved again).
    pairs: list[dict[str, Any]] = []
    for _ in range(40):
        first = claim(claim_status="submitted")
        pairs += [first, {**first, "claim_status": "approved"}]
    aba = claim(claim_status="approved")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    heartbeat = tmp_path / "hb.json"
    with kafka_topic(kafka_settings, prefix + CLAIMS.topic) as topic:
        produce(kafka_settings, topic, pairs, key_field="claim_id")
        produce(
            kafka_settings, topic, [aba, {**aba, "claim_status": "rejected"}], key_field="claim_id"
        )
        _land_and_curate(lake_spark, lake, reference, prefix, CLAIMS, "o1", heartbeat)
        middle = assert_engines_agree(lake_spark, lake, "silver/insurance/claims", ["claim_id"])
        assert {r["claim_id"]: r["claim_status"] for r in middle}[aba["claim_id"]] == "rejected"
        produce(kafka_settings, topic, [aba], key_field="claim_id")
        _land_and_curate(lake_spark, lake, reference, prefix, CLAIMS, "o2", heartbeat)

    silver = assert_engines_agree(lake_spark, lake, "silver/insurance/claims", ["claim_id"])
    statuses = {row["claim_id"]: row["claim_status"] for row in silver}
    assert statuses == {**{r["claim_id"]: "approved" for r in pairs}, aba["claim_id"]: "approved"}
    bronze = assert_engines_agree(lake_spark, lake, "bronze/insurance/claims", ["ingest_id"])
    aba_offsets = sorted(r["source_offset"] for r in bronze if r["record_key"] == aba["claim_id"])
    [winner] = [row for row in silver if row["claim_id"] == aba["claim_id"]]
    assert len(aba_offsets) == 3
    assert (winner["source_epoch"], winner["source_offset"]) == (1, aba_offsets[-1])
    assert winner["curation_run_id"] == "o2"
