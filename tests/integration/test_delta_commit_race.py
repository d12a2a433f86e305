"""Landing and OPTIMIZE commit to the same bronze table at the same time, from two JVMs: with the
table's commit lock no commit is overwritten, so every Kafka offset is in bronze exactly once.

The landing job runs in its own process on its own topic and lake prefix while the test's own
Spark session runs OPTIMIZE on the partition landing writes (today's, named explicitly: by
default bronze OPTIMIZE leaves it alone), in a loop, until the Delta history shows at least
`ROUNDS` OPTIMIZE commits each preceded by a landing commit.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from dataplatform.contracts import TRANSACTIONS
from dataplatform.settings import KafkaSettings
from pyspark_jobs.lake import Lake
from pyspark_jobs.maintenance import optimize
from tests.factories import transaction
from tests.integration.lakehouse_support import (
    JobProcess,
    delta_rs_rows,
    kafka_topic,
    lake,
    lake_spark,
    landing_args,
    produce,
    wait_for,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

#: OPTIMIZE commits, each right after a landing commit, the test waits for.
ROUNDS = 10
#: Records produced every `PRODUCE_EVERY_S` while OPTIMIZE loops: a steady load that landing,
#: reading up to `MAX_PER_BATCH` per micro-batch, keeps up with on a small machine.
CHUNK = 20
PRODUCE_EVERY_S = 0.5
MAX_PER_BATCH = 1000


def _operations(lake: Lake, table: str) -> list[str]:
    """The table's commit operations, oldest first."""
    delta = DeltaTable(
        lake.uri(table, scheme="s3"), storage_options=lake.s3.delta_storage_options()
    )
    return [commit["operation"] for commit in sorted(delta.history(), key=lambda c: c["version"])]


def _optimize_after_landing(operations: list[str]) -> int:
    """OPTIMIZE commits that directly follow a landing commit (appends interleaved with them)."""
    return sum(
        1
        for before, after in itertools.pairwise(operations)
        if after == "OPTIMIZE" and before != "OPTIMIZE"
    )


def test_landing_under_load_with_optimize_loop_lands_every_offset_once(
    lake_spark: SparkSession, lake: Lake, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    topic = prefix + TRANSACTIONS.topic
    bronze = TRANSACTIONS.table_path("bronze")
    produced: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            records = [transaction() for _ in range(CHUNK)]
            produced.extend(produce(kafka_settings, topic, records, key_field="transaction_id"))
            stop.wait(PRODUCE_EVERY_S)

    with kafka_topic(kafka_settings, topic):
        first = [transaction() for _ in range(CHUNK)]
        produced.extend(produce(kafka_settings, topic, first, key_field="transaction_id"))
        landing = JobProcess.start(
            "pyspark_jobs.landing",
            [
                *landing_args(lake, prefix, TRANSACTIONS, tmp_path / "heartbeat.json"),
                "--trigger-interval-s",
                "0.5",
                "--max-offsets-per-trigger",
                str(MAX_PER_BATCH),
            ],
            tmp_path / "landing.log",
        )
        try:
            wait_for(lambda: len(delta_rs_rows(lake, bronze)) > 0, 300, "landing's first commit")
            producer = threading.Thread(target=load, daemon=True)
            producer.start()
            today = datetime.now(UTC).date().isoformat()
            deadline = time.monotonic() + 600
            while _optimize_after_landing(_operations(lake, bronze)) < ROUNDS:
                history = _operations(lake, bronze)
                assert time.monotonic() < deadline, f"too few interleaved OPTIMIZEs: {history}"
                assert landing.process.poll() is None, f"landing stopped:\n{landing.tail()}"
                optimize(lake_spark, lake, bronze, where=f"ingest_date >= '{today}'")
            stop.set()
            producer.join(60)
            expected = len(produced)
            wait_for(
                lambda: len(delta_rs_rows(lake, bronze)) >= expected,
                300,
                f"all {expected} records in bronze",
            )
            time.sleep(3)  # a duplicate would be a later commit: give it the chance to show
        finally:
            stop.set()
            landing.kill()

    operations = _operations(lake, bronze)
    assert _optimize_after_landing(operations) >= ROUNDS, operations
    rows = delta_rs_rows(lake, bronze)
    coordinates = Counter((row["kafka_partition"], row["kafka_offset"]) for row in rows)
    assert max(coordinates.values()) == 1, "a Kafka record landed twice"
    assert len(rows) == len(produced), f"{len(rows)} rows in bronze for {len(produced)} records"
    assert sorted(row["ingest_id"] for row in rows) == sorted(produced)
    # Every offset of every partition, none skipped: 0..n-1 per partition.
    per_partition: dict[int, list[int]] = {}
    for partition, offset in coordinates:
        per_partition.setdefault(partition, []).append(offset)
    for partition, offsets in per_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"offsets missing in {partition}"
