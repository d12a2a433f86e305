"""Landing is exactly once across SIGKILLs of its driver (Python and JVM), mid-batch and
mid-stream, on the real Kafka broker, S3 server and Spark."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake, landing_job_name
from dataplatform.settings import KafkaSettings
from tests.factories import transaction
from tests.integration.lakehouse_support import (
    JobProcess,
    delta_rs_rows,
    delta_rs_version,
    kafka_topic,
    lake,
    landing_args,
    produce,
    wait_for,
)

__all__ = ["lake"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RECORDS = 600
BATCH = 100


def _heartbeat_batch(path: Path) -> int:
    state = json.loads(path.read_text())
    query = state["queries"].get(landing_job_name(TRANSACTIONS), {})
    return int(query.get("batch_id", -1))


def test_landing_sigkill_mid_batch_and_mid_stream_no_duplicate_no_gap(
    lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    records = [transaction() for _ in range(RECORDS)]
    heartbeat = tmp_path / "heartbeat.json"
    args = landing_args(lake, prefix, TRANSACTIONS, heartbeat)
    bronze = TRANSACTIONS.table_path("bronze")
    log = tmp_path / "landing.log"

    with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic):
        ingest_ids = produce(
            kafka_settings, prefix + TRANSACTIONS.topic, records, key_field="transaction_id"
        )

        # 1. Killed mid-batch: batch 0 is in bronze but not committed to the checkpoint.
        first = JobProcess.start(
            "pyspark_jobs.landing",
            [*args, "--max-offsets-per-trigger", str(BATCH), "--fault-pause-after-write-s", "300"],
            log,
        )
        # Killed in the pause, not while Delta is still finishing its commit: the row count
        # below and the replay of batch 0 are what this step is about.
        pausing = "pausing 300 s after the bronze append of batch 0"
        wait_for(
            lambda: (
                delta_rs_version(lake, bronze) >= 1 and pausing in log.read_text(errors="replace")
            ),
            240,
            "the first bronze append",
        )
        first.kill()
        # maxOffsetsPerTrigger is split across partitions in proportion: about BATCH rows.
        assert 0 < len(delta_rs_rows(lake, bronze)) <= BATCH

        # 2. Restarted: batch 0 is replayed (Delta skips the append it already has), then
        #    killed again between later batches, at whatever point they are.
        second = JobProcess.start(
            "pyspark_jobs.landing",
            [*args, "--max-offsets-per-trigger", str(BATCH), "--trigger-interval-s", "1"],
            log,
        )
        wait_for(lambda: _heartbeat_batch(heartbeat) >= 2, 300, "three more micro-batches")
        second.kill()
        landed_so_far = len(delta_rs_rows(lake, bronze))
        assert 0 < landed_so_far < RECORDS

        # 3. Restarted once more: land the rest and stop.
        third = JobProcess.start("pyspark_jobs.landing", [*args, "--available-now"], log)
        assert third.wait(300) == 0, third.tail()

    rows = delta_rs_rows(lake, bronze)
    coordinates = Counter((row["kafka_partition"], row["kafka_offset"]) for row in rows)
    assert len(rows) == RECORDS, f"{len(rows)} rows landed for {RECORDS} records"
    assert max(coordinates.values()) == 1, "a Kafka record landed twice"
    assert sorted(row["record_key"] for row in rows) == sorted(r["transaction_id"] for r in records)
    assert sorted(row["ingest_id"] for row in rows) == sorted(ingest_ids)
    # The first run was killed in its pause, before it could log batch 0: the line comes from
    # the replay of batch 0 by the second run, whose append Delta skipped.
    text = log.read_text()
    assert pausing in text
    assert text.count("landed batch 0 of") == 1, "batch 0 was not replayed after the first kill"
