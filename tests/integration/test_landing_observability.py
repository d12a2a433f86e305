"""One record followed from its HTTP request to its bronze row by its trace id, and the landing
job's metrics measured on a real run: the platform's ingestor and Kafka, a landing query of
the test's own (its own lake prefix and checkpoint, reading the real topic from the offsets it
had when the test began), real S3, Spark and Delta.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from pyspark.sql import SparkSession

from dataplatform import samples
from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake, quarantine_path
from dataplatform.native.base import Context
from dataplatform.settings import KafkaSettings, get_ingestor_settings
from fastapi_app.testing import create_api_key
from pyspark_jobs import landing_metrics
from pyspark_jobs.landing import LandingOptions, run_landing
from pyspark_jobs.landing_metrics import ConsumerLag
from tests.integration.lakehouse_support import (
    delta_rs_rows,
    end_offsets,
    kafka_topic,
    lake,
    lake_spark,
    produce,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TX = "/ingest-financial-transaction/"
TX_BATCH = "/v1/transactions/batch"
LABEL = "finance.transactions"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _traceparent() -> tuple[str, str]:
    trace_id = uuid.uuid4().hex
    return trace_id, f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


def test_land_records_trace_id_from_request_on_bronze_rows_and_metrics(
    platform: Context, lake_spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    ingestor = get_ingestor_settings()
    key = create_api_key(platform.postgres, ingestor.db_schema)
    start = end_offsets(platform.kafka, [TRANSACTIONS.topic])
    rng = random.Random()
    single, batch = samples.transaction(rng), [samples.transaction(rng) for _ in range(2)]
    single_trace, single_parent = _traceparent()
    batch_trace, batch_parent = _traceparent()
    with httpx.Client(base_url=ingestor.base_url, headers={"X-API-Key": key}, timeout=30) as api:
        # The ingestor's server span continues the client's trace; its Kafka produce span and
        # every record's traceparent header belong to that trace.
        answer = api.post(TX, json=single, headers={"traceparent": single_parent})
        assert answer.status_code == 200, answer.text
        answer = api.post(TX_BATCH, json=batch, headers={"traceparent": batch_parent})
        assert answer.status_code == 200, answer.text
    before = {
        table: _sample("landing_records_total", entity=LABEL, table=table)
        for table in ("bronze", "quarantine")
    }
    batches = _sample("landing_batches_total", entity=LABEL)
    to_bronze = _sample("landing_time_to_bronze_seconds_count", entity=LABEL)
    commits = _sample("landing_delta_commit_seconds_count", entity=LABEL, table="bronze")

    run_landing(
        lake_spark,
        lake,
        [TRANSACTIONS],
        LandingOptions(
            available_now=True,
            starting_offsets=json.dumps(start),
            heartbeat_path=tmp_path / "heartbeat.json",
        ),
    )

    bronze = delta_rs_rows(lake, TRANSACTIONS.table_path("bronze"))
    traces = {row["record_key"]: row["trace_id"] for row in bronze}
    assert traces[single["transaction_id"]] == single_trace
    assert {traces[record["transaction_id"]] for record in batch} == {batch_trace}

    # Counters say what this run landed (its tables hold exactly that).
    quarantined = delta_rs_rows(lake, quarantine_path(TRANSACTIONS, "landing"))
    assert _sample("landing_records_total", entity=LABEL, table="bronze") - before["bronze"] == len(
        bronze
    )
    assert _sample("landing_records_total", entity=LABEL, table="quarantine") - before[
        "quarantine"
    ] == len(quarantined)
    assert _sample("landing_batches_total", entity=LABEL) > batches
    assert _sample("landing_time_to_bronze_seconds_count", entity=LABEL) > to_bronze
    assert _sample("landing_delta_commit_seconds_count", entity=LABEL, table="bronze") > commits
    assert _sample("landing_last_batch_timestamp_seconds", entity=LABEL) > 0
    # The progress listener recorded the committed end offsets of the real topic.
    lag = {
        sample.labels["partition"]: sample.value
        for family in landing_metrics.LAG.collect()
        for sample in family.samples
        if sample.labels["topic"] == TRANSACTIONS.topic
    }
    assert set(lag) == set(start[TRANSACTIONS.topic])
    assert all(value >= 0 for value in lag.values())


def test_measure_consumer_lag_log_end_minus_committed_offsets(
    kafka_settings: KafkaSettings,
) -> None:
    name = f"t{uuid.uuid4().hex[:8]}.{TRANSACTIONS.topic}"
    with kafka_topic(kafka_settings, name, partitions=3) as topic:
        records = [samples.transaction() for _ in range(12)]
        produce(kafka_settings, topic, records, key_field="transaction_id")
        high = end_offsets(kafka_settings, [topic])[topic]
        assert sum(high.values()) == 12
        busiest, other, unseen = sorted(high, key=lambda p: high[p], reverse=True)
        lag = ConsumerLag()
        # Landing committed two records short of the end of the busiest partition (it holds at
        # least 4 of the 12) and all of another; the third was never reported: no sample.
        committed = {int(busiest): high[busiest] - 2, int(other): high[other]}
        lag.landed(kafka_settings.bootstrap_servers, {topic: committed})

        (family,) = list(lag.collect())

    assert family.name == "landing_consumer_lag_records"
    assert {s.labels["partition"]: s.value for s in family.samples} == {busiest: 2.0, other: 0.0}
    assert unseen not in {s.labels["partition"] for s in family.samples}


def test_measure_consumer_lag_of_a_deleted_topic_drops_it_and_keeps_the_others(
    kafka_settings: KafkaSettings,
) -> None:
    kept = f"t{uuid.uuid4().hex[:8]}.{TRANSACTIONS.topic}"
    with kafka_topic(kafka_settings, kept, partitions=1) as topic:
        produce(kafka_settings, topic, [samples.transaction()], key_field="transaction_id")
        lag = ConsumerLag()
        with kafka_topic(kafka_settings, f"{kept}.gone", partitions=1) as gone:
            lag.landed(kafka_settings.bootstrap_servers, {topic: {0: 0}, gone: {0: 0}})
        # `gone` is deleted now (as a test's throwaway topic is after the test).
        (family,) = list(lag.collect())

    assert {(s.labels["topic"], s.value) for s in family.samples} == {(kept, 1.0)}
