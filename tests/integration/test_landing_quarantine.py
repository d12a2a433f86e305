"""Landing on the real Kafka, S3 and Spark: bad records to quarantine with their reason, the
heartbeat, and a recreated or truncated topic stopping the job with reset instructions."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from dataplatform.contracts import CLAIMS, TRANSACTIONS
from dataplatform.settings import KafkaSettings
from pyspark_jobs.lake import Lake
from pyspark_jobs.landing import LandingDataLossError, LandingOptions, run_landing
from tests.factories import claim, transaction
from tests.integration.lakehouse_support import (
    ROOT,
    assert_engines_agree,
    create_topic,
    delete_topic,
    kafka_topic,
    lake,
    lake_spark,
    produce,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _land(spark: SparkSession, lake: Lake, prefix: str, heartbeat: Path, *entities: object) -> None:
    run_landing(
        spark,
        lake,
        list(entities) or [TRANSACTIONS],  # type: ignore[arg-type]
        LandingOptions(available_now=True, topic_prefix=prefix, heartbeat_path=heartbeat),
    )


def test_landing_bad_records_quarantined_with_reason(
    lake_spark: SparkSession, lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    good = [transaction() for _ in range(8)]
    bad: list[dict[str, object] | bytes] = [
        transaction(account_id=None),
        transaction(channel="web"),
        transaction(amount="-5"),
        b"\xff\xfe not utf-8",
        b'{"transaction_id": "FT-1", ',
    ]
    claims = [claim() for _ in range(3)]
    heartbeat = tmp_path / "heartbeat.json"
    with (
        kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic) as topic,
        kafka_topic(kafka_settings, prefix + CLAIMS.topic) as claims_topic,
    ):
        produce(kafka_settings, topic, good, key_field="transaction_id")
        bad_ids = produce(kafka_settings, topic, bad, key_field="transaction_id")
        produce(kafka_settings, claims_topic, claims, key_field="claim_id")

        _land(lake_spark, lake, prefix, heartbeat, TRANSACTIONS, CLAIMS)

    bronze = assert_engines_agree(lake_spark, lake, "bronze/finance/transactions", ["ingest_id"])
    assert sorted(row["record_key"] for row in bronze) == sorted(r["transaction_id"] for r in good)
    assert {json.loads(row["payload"])["transaction_id"] for row in bronze} == {
        r["transaction_id"] for r in good
    }
    claims_bronze = assert_engines_agree(lake_spark, lake, "bronze/insurance/claims", ["ingest_id"])
    assert len(claims_bronze) == 3

    quarantined = assert_engines_agree(
        lake_spark, lake, "quarantine/landing/finance/transactions", ["quarantine_id"]
    )
    by_ingest_id = {row["ingest_id"]: row for row in quarantined}
    assert sorted(by_ingest_id) == sorted(bad_ids)
    reasons = [by_ingest_id[ingest_id]["reason"] for ingest_id in bad_ids]
    assert "account_id: Input should be a valid string" in reasons[0]
    assert "channel: Extra inputs are not permitted" in reasons[1]
    assert "amount: Input should be greater than or equal to 0" in reasons[2]
    assert reasons[3].startswith("payload is not UTF-8")
    assert "Invalid JSON" in reasons[4]
    assert by_ingest_id[bad_ids[1]]["payload"] == json.dumps(bad[1])
    assert by_ingest_id[bad_ids[3]]["payload"].startswith("base64:")
    assert {row["stage"] for row in quarantined} == {"landing"}

    beat = json.loads(heartbeat.read_text())
    assert beat["status"] == "stopped"
    assert beat["lake_prefix"] == lake.prefix
    assert beat["queries"]["landing-finance-transactions"]["num_input_rows"] == 13


def test_landing_out_of_range_timestamp_and_repeated_key_quarantined_job_keeps_landing(
    lake_spark: SparkSession, lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # Findings 4 and 6, straight on the topic: a timestamp outside years 1-9999 once in UTC
    # and a repeated key ("last wins" would ingest 1000000).
    prefix = f"t{uuid.uuid4().hex[:8]}."
    late = transaction(timestamp="9999-12-31T23:59:59-01:00")
    early = transaction(timestamp="0001-01-01T00:00:00+01:00")
    twice = json.dumps(transaction(amount=1)).replace(
        '"amount": 1', '"amount": 1, "amount": 1000000'
    )
    after = [transaction() for _ in range(3)]
    heartbeat = tmp_path / "heartbeat.json"
    with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic) as topic:
        bad_ids = produce(
            kafka_settings, topic, [late, early, twice.encode()], key_field="transaction_id"
        )
        produce(kafka_settings, topic, after, key_field="transaction_id")

        _land(lake_spark, lake, prefix, heartbeat)

    quarantined = assert_engines_agree(
        lake_spark, lake, "quarantine/landing/finance/transactions", ["quarantine_id"]
    )
    reasons = {row["ingest_id"]: row["reason"] for row in quarantined}
    assert sorted(reasons) == sorted(bad_ids)
    assert reasons[bad_ids[0]].startswith("timestamp:")
    assert reasons[bad_ids[1]].startswith("timestamp:")
    assert reasons[bad_ids[2]] == "record: the key 'amount' appears more than once in one object"
    assert all(row["source_epoch"] == 1 for row in quarantined)
    bronze = assert_engines_agree(lake_spark, lake, "bronze/finance/transactions", ["ingest_id"])
    assert sorted(row["record_key"] for row in bronze) == sorted(r["transaction_id"] for r in after)
    assert json.loads(heartbeat.read_text())["status"] == "stopped"


def test_landing_recreated_topic_stops_with_reset_instructions(
    lake_spark: SparkSession, lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    topic = prefix + TRANSACTIONS.topic
    heartbeat = tmp_path / "heartbeat.json"
    first = [transaction() for _ in range(5)]
    second = [transaction() for _ in range(8)]
    try:
        create_topic(kafka_settings, topic)
        produce(kafka_settings, topic, first, key_field="transaction_id")
        _land(lake_spark, lake, prefix, heartbeat)
        # Recreated and filled beyond the old offsets: Spark alone would read from offset ~2
        # of each partition on and silently skip the new topic's first records.
        delete_topic(kafka_settings, topic)
        create_topic(kafka_settings, topic)
        produce(kafka_settings, topic, second, key_field="transaction_id")

        with pytest.raises(LandingDataLossError) as caught:
            _land(lake_spark, lake, prefix, heartbeat)

        message = str(caught.value)
        assert f"Kafka topic '{topic}' was recreated" in message
        assert "dataplatform lake reset-landing --entity finance/transactions" in message
        assert json.loads(heartbeat.read_text())["status"] == "failed"

        reset = subprocess.run(
            [
                str(Path(sys.executable).parent / "dataplatform"),
                "lake",
                "reset-landing",
                "--entity",
                "finance/transactions",
                "--lake-prefix",
                lake.prefix,
                "--yes",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert reset.returncode == 0, reset.stderr
        _land(lake_spark, lake, prefix, heartbeat)
    finally:
        delete_topic(kafka_settings, topic)

    bronze = assert_engines_agree(lake_spark, lake, "bronze/finance/transactions", ["ingest_id"])
    assert sorted(row["record_key"] for row in bronze) == sorted(
        r["transaction_id"] for r in first + second
    )
    # The recreated topic is a new epoch of the order token: its offsets restart at 0 but
    # its versions sort after every version of the first topic.
    epochs = {row["record_key"]: row["source_epoch"] for row in bronze}
    assert {epochs[r["transaction_id"]] for r in first} == {1}
    assert {epochs[r["transaction_id"]] for r in second} == {2}


def test_landing_truncated_topic_stops_with_data_loss_error(
    lake_spark: SparkSession, lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    heartbeat = tmp_path / "heartbeat.json"
    with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic, partitions=1) as topic:
        produce(
            kafka_settings, topic, [transaction() for _ in range(3)], key_field="transaction_id"
        )
        _land(lake_spark, lake, prefix, heartbeat)
        produce(
            kafka_settings, topic, [transaction() for _ in range(3)], key_field="transaction_id"
        )
        # Records the job has not landed yet disappear (as if retention had removed them).
        admin = AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers})
        for future in admin.delete_records([TopicPartition(topic, 0, 5)]).values():
            future.result(timeout=30)

        with pytest.raises(LandingDataLossError, match="reset-landing"):
            _land(lake_spark, lake, prefix, heartbeat)
