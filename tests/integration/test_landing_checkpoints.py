"""Landing checkpoints bronze beside its commits, and every engine reads those checkpoints:
the real Kafka broker, S3 server, Spark and Delta."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from dataplatform.clients.s3 import s3_client
from dataplatform.contracts import TRANSACTIONS
from dataplatform.delta_checkpoints import INLINE_CHECKPOINTS_OFF
from dataplatform.lake import Lake, landing_job_name
from dataplatform.settings import KafkaSettings
from tests.factories import transaction
from tests.integration.lakehouse_support import (
    JobProcess,
    delta_rs_rows,
    kafka_topic,
    lake,
    lake_spark,
    landing_args,
    produce,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RECORDS = 80
#: About eight micro-batches of ten: bronze versions 1-8 or so, checkpoints at 2, 4, 6, ...
PER_BATCH = 10
EVERY = 2


def _checkpoint_versions(lake: Lake, table: str) -> list[int]:
    """The versions of the table's checkpoint files, from a listing of its `_delta_log`."""
    prefix = f"{lake.relative(table)}/_delta_log/"
    pages = s3_client(lake.s3).get_paginator("list_objects_v2")
    names = [
        item["Key"].removeprefix(prefix)
        for page in pages.paginate(Bucket=lake.s3.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    return sorted(int(name.split(".")[0]) for name in names if ".checkpoint." in name)


def test_landing_checkpoints_bronze_outside_its_commits_and_spark_reads_them(
    lake: Lake,
    lake_spark: SparkSession,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    records = [transaction() for _ in range(RECORDS)]
    bronze = TRANSACTIONS.table_path("bronze")
    log = tmp_path / "landing.log"
    args = landing_args(lake, prefix, TRANSACTIONS, tmp_path / "heartbeat.json")
    # The job's process reads it (JobProcess passes this process's environment on).
    monkeypatch.setenv("LAKEHOUSE_BRONZE_CHECKPOINT_INTERVAL", str(EVERY))
    with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic):
        produce(kafka_settings, prefix + TRANSACTIONS.topic, records, key_field="transaction_id")
        job = JobProcess.start(
            "pyspark_jobs.landing",
            [*args, "--available-now", "--max-offsets-per-trigger", str(PER_BATCH)],
            log,
        )
        assert job.wait(300) == 0, job.tail()

    table = lake.delta_rs(bronze)
    assert table is not None
    latest = table.version()
    # No commit writes a checkpoint itself: the job's own thread wrote every one that fell due
    # (an availableNow run waits for them before it exits).
    assert table.metadata().configuration["delta.checkpointInterval"] == str(INLINE_CHECKPOINTS_OFF)
    written = _checkpoint_versions(lake, bronze)
    assert latest >= 6, job.tail()
    assert written == list(range(EVERY, latest + 1, EVERY)), log.read_text()
    last = json.loads(
        s3_client(lake.s3)
        .get_object(
            Bucket=lake.s3.bucket, Key=f"{lake.relative(bronze)}/_delta_log/_last_checkpoint"
        )["Body"]
        .read()
    )
    assert last["version"] == written[-1]

    # delta-rs and Spark both read the table from that checkpoint: the same rows, Spark's
    # snapshot starts from it, and it carries the Delta transaction of the run's first append
    # (what a replayed first batch is checked against).
    assert len(delta_rs_rows(lake, bronze)) == RECORDS
    uri = lake.uri(bronze)
    assert lake_spark.read.format("delta").load(uri).count() == RECORDS
    delta_log = lake_spark._jvm.org.apache.spark.sql.delta.DeltaLog  # type: ignore[union-attr]
    # The read above loaded the table's log into this JVM (a fresh listing: the first read).
    snapshot = delta_log.forTable(lake_spark._jsparkSession, uri).unsafeVolatileSnapshot()
    assert snapshot.version() == latest
    assert snapshot.checkpointProvider().version() == written[-1]
    transactions = snapshot.transactions()
    assert transactions.size() == 1
    assert transactions.head()._1().startswith(landing_job_name(TRANSACTIONS))
    # Curation reads bronze's change feed from the versions it has not processed.
    changes = (
        lake_spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 1)
        .load(uri)
    )
    assert changes.count() == RECORDS
