"""SIGKILL of the Kafka broker in the middle of a load: every acknowledged record ends up
exactly once in silver (idempotent producer, Spark's checkpointed offsets, Delta idempotent
appends, MERGE on the key)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pyspark.sql import SparkSession

from dataplatform.clients.kafka import producer_config
from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake
from dataplatform.settings import KafkaSettings, PostgresSettings
from pyspark_jobs import curation, quality
from tests.factories import transaction
from tests.integration.lakehouse_support import (
    JobProcess,
    broker_pid,
    broker_restored,
    broker_up,
    delta_rs_rows,
    kafka_topic,
    lake,
    lake_spark,
    landing_args,
    wait_for,
)

__all__ = ["broker_restored", "lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RECORDS = 1500
RATE_PER_S = 100


def test_broker_sigkill_mid_load_no_loss_no_duplicate_in_silver(
    lake_spark: SparkSession,
    lake: Lake,
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    broker_restored: object,
    tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    records = [transaction(account_id=f"ACC-{n % 7}") for n in range(RECORDS)]
    acked: list[str] = []
    failed: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        (failed if err else acked).append(msg.key().decode())  # type: ignore[attr-defined]

    def load(topic: str) -> None:
        # Generous timeouts: records produced while the broker is down wait in the client and
        # are retried (idempotently) once it is back, as the ingestor's producer does.
        producer = Producer({**producer_config(kafka_settings), "message.timeout.ms": 180000})
        for record in records:
            producer.produce(
                topic,
                key=record["transaction_id"].encode(),
                value=json.dumps(record).encode(),
                headers=[("ingest_id", f"ing-{uuid.uuid4().hex}".encode())],
                on_delivery=on_delivery,
            )
            producer.poll(0)
            time.sleep(1 / RATE_PER_S)
        producer.flush(240)

    with kafka_topic(kafka_settings, prefix + TRANSACTIONS.topic) as topic:
        landing = JobProcess.start(
            "pyspark_jobs.landing",
            [
                *landing_args(lake, prefix, TRANSACTIONS, tmp_path / "hb.json"),
                "--trigger-interval-s",
                "1",
            ],
            tmp_path / "landing.log",
        )
        producer = threading.Thread(target=load, args=(topic,))
        producer.start()
        wait_for(lambda: len(acked) >= RECORDS // 4, 120, "a quarter of the load")
        pid = broker_pid()
        assert pid, "no broker PID from supervisorctl"
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: broker_pid() not in (0, pid) and broker_up(kafka_settings),
            180,
            "broker restart",
        )
        producer.join(300)
        assert not producer.is_alive()
        assert not failed, f"{len(failed)} records not acknowledged"

        wait_for(
            lambda: (
                landing.process.poll() is not None
                or len(delta_rs_rows(lake, "bronze/finance/transactions")) >= len(acked)
            ),
            300,
            "the landing job to catch up",
        )
        if landing.process.poll() is None:
            landing.process.send_signal(signal.SIGTERM)
            assert landing.wait(120) == 0, landing.tail()
        else:
            # Supervisord restarts a failed landing job; do what it would do.
            again = JobProcess.start(
                "pyspark_jobs.landing",
                [
                    *landing_args(lake, prefix, TRANSACTIONS, tmp_path / "hb.json"),
                    "--available-now",
                ],
                tmp_path / "landing.log",
            )
            assert again.wait(300) == 0, again.tail()

    bronze = delta_rs_rows(lake, "bronze/finance/transactions")
    assert max(Counter((r["kafka_partition"], r["kafka_offset"]) for r in bronze).values()) == 1
    curation.curate_entity(
        lake_spark,
        lake,
        TRANSACTIONS,
        run_id="after-broker-kill",
        reference=curation.read_reference(lake_spark, postgres_settings),
        expectations=quality.load_expectations(TRANSACTIONS),
    )
    silver_keys = [
        row["transaction_id"] for row in delta_rs_rows(lake, "silver/finance/transactions")
    ]
    assert len(silver_keys) == len(set(silver_keys)) == RECORDS
    assert set(silver_keys) == set(acked) == {r["transaction_id"] for r in records}
