"""OpenLineage events of the jobs on the real Kafka, S3, Postgres and Spark.

Records produced to a topic of the test's own are landed and curated with lineage on; the
events, read back from the lake's events table (library and CLI) and from the Kafka topic, trace
gold to that topic through bronze and silver with the platform's job names, and the curation
runs name the (Airflow-style) parent run they were given.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from dataplatform import lineage
from dataplatform.clients.kafka import ensure_topics
from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake
from dataplatform.settings import LINEAGE_TOPIC, KafkaSettings, LineageSettings, PostgresSettings
from pyspark_jobs.curation import curate_entity, read_reference
from pyspark_jobs.landing import LandingOptions, run_landing
from pyspark_jobs.quality import load_expectations
from tests.factories import transaction
from tests.integration.lakehouse_support import end_offsets, kafka_topic, lake, lake_spark, produce
from tests.integration.lineage_support import assert_gold_lineage

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def test_lineage_of_gold_is_topic_bronze_silver_gold(
    lake_spark: SparkSession,
    lake: Lake,
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    account = f"ACC-LINEAGE-{uuid.uuid4().hex[:8]}"
    records = [
        transaction(account_id=account, timestamp=f"2024-06-0{1 + n % 2}T10:00:00Z")
        for n in range(6)
    ]
    ensure_topics(kafka_settings, [LINEAGE_TOPIC])
    start = end_offsets(kafka_settings, [LINEAGE_TOPIC])[LINEAGE_TOPIC]
    emitter = lineage.LineageEmitter.from_settings(
        lake,
        kafka=kafka_settings,
        postgres=postgres_settings,
        settings=LineageSettings(transport="kafka", delta=True),
    )
    parent = f"dataplatform/curation.curate/{uuid.uuid4()}"
    try:
        with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic) as topic:
            produce(kafka_settings, topic, records, key_field="transaction_id")
            run_landing(
                lake_spark,
                lake,
                [TRANSACTIONS],
                LandingOptions(
                    available_now=True, topic_prefix=prefix, heartbeat_path=tmp_path / "hb.json"
                ),
                kafka=kafka_settings,
                lineage=emitter,
            )
        curate_entity(
            lake_spark,
            lake,
            TRANSACTIONS,
            run_id=f"lineage-{uuid.uuid4().hex[:8]}",
            reference=read_reference(lake_spark, postgres_settings),
            expectations=load_expectations(TRANSACTIONS, None),
            lineage=emitter,
            lineage_parent=lineage.ParentRun.parse(parent),
        )
    finally:
        emitter.close()

    assert_gold_lineage(
        lake,
        kafka_settings,
        topic,
        start,
        parent=parent,
        min_rows={"bronze": 6, "silver": 6, "gold": 2},
    )
