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
    lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Delta checkpoint every other bronze version (written by the job's own thread, read
    # back by each restart): the kills also land while one is written.
    monkeypatch.setenv("LAKEHOUSE_BRONZE_CHECKPOINT_INTERVAL", "2")
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

        # 2. Restarted: batch 0 is replayed (the first batch of a run: its append is found
        #    in bronze and skipped), batch 1 lands, and the run is killed after the bronze
        #    append of batch 2: a batch that is not the first of its run, written without
        #    Delta's transaction lookup, found again through its commit's tag.
        second = JobProcess.start(
            "pyspark_jobs.landing",
            [
                *args,
                "--max-offsets-per-trigger",
                str(BATCH),
                "--trigger-interval-s",
                "1",
                "--fault-pause-after-write-s",
                "300",
                "--fault-pause-from-batch",
                "2",
            ],
            log,
        )
        pausing_later = "pausing 300 s after the bronze append of batch 2"
        wait_for(lambda: pausing_later in log.read_text(errors="replace"), 300, "batch 2's append")
        second.kill()
        landed_so_far = len(delta_rs_rows(lake, bronze))
        assert 2 * BATCH < landed_so_far < RECORDS

        # 3. Restarted: batch 2 is replayed, then killed again between later batches, at
        #    whatever point they are.
        third = JobProcess.start(
            "pyspark_jobs.landing",
            [*args, "--max-offsets-per-trigger", str(BATCH), "--trigger-interval-s", "1"],
            log,
        )
        wait_for(lambda: _heartbeat_batch(heartbeat) >= 4, 300, "two more micro-batches")
        third.kill()
        assert len(delta_rs_rows(lake, bronze)) < RECORDS

        # 4. Restarted once more: land the rest and stop.
        fourth = JobProcess.start("pyspark_jobs.landing", [*args, "--available-now"], log)
        assert fourth.wait(300) == 0, fourth.tail()

    rows = delta_rs_rows(lake, bronze)
    coordinates = Counter((row["kafka_partition"], row["kafka_offset"]) for row in rows)
    assert len(rows) == RECORDS, f"{len(rows)} rows landed for {RECORDS} records"
    assert max(coordinates.values()) == 1, "a Kafka record landed twice"
    assert sorted(row["record_key"] for row in rows) == sorted(r["transaction_id"] for r in records)
    assert sorted(row["ingest_id"] for row in rows) == sorted(ingest_ids)
    # The first two runs were killed in their pauses, before they could log batches 0 and 2:
    # those lines come from the replays by the next runs, whose appends were skipped.
    text = log.read_text()
    assert pausing in text
    assert pausing_later in text
    assert text.count("landed batch 0 of") == 1, "batch 0 was not replayed after the first kill"
    assert text.count("landed batch 2 of") == 1, "batch 2 was not replayed after the second kill"
    assert text.count("batch 2 is already in") == 1, "the replay of batch 2 was not skipped"
