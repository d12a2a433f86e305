"""Helpers and fixtures of the lakehouse tests (landing, curation, e2e).

Every test writes under its own `s3://lakehouse/tests/lakehouse/<uuid>/` root and its own
Kafka topics, so it never meets the live landing job or another test. Import the fixtures
into a test module (`from tests.integration.lakehouse_support import lake, lake_spark`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from dataplatform.clients.kafka import producer_config
from dataplatform.clients.s3 import delete_prefix
from dataplatform.contracts import Entity
from dataplatform.lake import Lake
from dataplatform.reference import seed_reference_data
from dataplatform.settings import KafkaSettings, PostgresSettings, S3Settings, project_root
from pyspark_jobs.launch import start_job_session
from pyspark_jobs.schemas import bronze_schema
from pyspark_jobs.tables import ensure_landing_tables

ROOT = project_root()


@pytest.fixture(scope="module")
def lake_spark(s3_settings: S3Settings, postgres_settings: PostgresSettings) -> SparkSession:
    """The jobs' Spark session (Delta, Kafka, s3a), with the reference data seeded.

    Not stopped at the module's end: the next lakehouse module reuses the running JVM
    (`getOrCreate`) instead of paying for another start.
    """
    seed_reference_data(postgres_settings)
    return start_job_session("tests-lakehouse")


@pytest.fixture
def lake(s3_settings: S3Settings) -> Iterator[Lake]:
    """An empty lake root of its own for one test, deleted afterwards."""
    prefix = f"tests/lakehouse/{uuid.uuid4().hex[:12]}"
    yield Lake(s3=s3_settings, prefix=prefix)
    delete_prefix(s3_settings, prefix)


# --------------------------------------------------------------------------- reading tables


def _plain(value: Any) -> Any:
    # Spark hands timestamps back as naive local time, delta-rs as aware UTC: compare in UTC.
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def delta_rs_rows(lake: Lake, table: str) -> list[dict[str, Any]]:
    """Every row of a table, read with delta-rs (the second Delta implementation)."""
    delta = DeltaTable(
        lake.uri(table, scheme="s3"), storage_options=lake.s3.delta_storage_options()
    )
    return [{k: _plain(v) for k, v in row.items()} for row in delta.to_pyarrow_table().to_pylist()]


def delta_rs_version(lake: Lake, table: str) -> int:
    """A table's latest version, read with delta-rs."""
    return DeltaTable(
        lake.uri(table, scheme="s3"), storage_options=lake.s3.delta_storage_options()
    ).version()


def spark_rows(spark: SparkSession, lake: Lake, table: str) -> list[dict[str, Any]]:
    """Every row of a table, read with Spark."""
    rows = spark.read.format("delta").load(lake.uri(table)).collect()
    return [{k: _plain(v) for k, v in row.asDict().items()} for row in rows]


def assert_engines_agree(
    spark: SparkSession, lake: Lake, table: str, key: Sequence[str]
) -> list[dict[str, Any]]:
    """Spark and delta-rs read the same rows, column for column; returns them (Spark's)."""

    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {tuple(row[k] for k in key): row for row in rows}

    by_spark, by_delta_rs = spark_rows(spark, lake, table), delta_rs_rows(lake, table)
    assert len(by_spark) == len(by_delta_rs), table
    assert keyed(by_spark) == keyed(by_delta_rs), table
    return by_spark


# --------------------------------------------------------------------------- bronze input


def write_bronze(
    spark: SparkSession,
    lake: Lake,
    entity: Entity,
    records: Sequence[tuple[dict[str, Any], datetime]],
) -> int:
    """Append records to an entity's bronze table, as the landing job would, in one commit.

    Args:
        spark: The session.
        lake: Where bronze is.
        entity: Whose table.
        records: `(record, ingested_at)`; each gets a fresh ingest id and the next offset,
            its order token being `(1, offset)`.

    Returns:
        The bronze version written.
    """
    ensure_landing_tables(spark, lake, entity)
    uri = lake.table("bronze", entity)
    start = spark.read.format("delta").load(uri).count()
    rows = [
        (
            f"ing-{uuid.uuid4().hex[:12]}",
            str(record[entity.key_field]),
            json.dumps(record),
            "kafka",
            entity.topic,
            0,
            start + offset,
            None,
            ingested_at,
            datetime.now(UTC),
            ingested_at.date(),
            1,
            start + offset,
            None,
        )
        for offset, (record, ingested_at) in enumerate(records)
    ]
    spark.createDataFrame(rows, bronze_schema()).write.format("delta").mode("append").save(uri)
    return delta_rs_version(lake, entity.table_path("bronze"))


# --------------------------------------------------------------------------- Kafka


@contextmanager
def kafka_topic(kafka: KafkaSettings, name: str, *, partitions: int = 3) -> Iterator[str]:
    """A topic of the test's own, deleted afterwards."""
    create_topic(kafka, name, partitions=partitions)
    try:
        yield name
    finally:
        delete_topic(kafka, name)


def _admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka.bootstrap_servers})


def create_topic(kafka: KafkaSettings, name: str, *, partitions: int = 3) -> None:
    """Create a topic and wait until its metadata is visible."""
    admin = _admin(kafka)  # must outlive its futures
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    wait_for(lambda: name in _admin(kafka).list_topics(timeout=5).topics, 30, f"topic {name}")


def delete_topic(kafka: KafkaSettings, name: str) -> None:
    """Delete a topic (if it exists) and wait until it is gone."""
    admin = _admin(kafka)
    if name not in admin.list_topics(timeout=10).topics:
        return
    for future in admin.delete_topics([name]).values():
        future.result(timeout=30)
    wait_for(lambda: name not in _admin(kafka).list_topics(timeout=5).topics, 60, f"{name} gone")


def produce(
    kafka: KafkaSettings,
    topic: str,
    records: Sequence[dict[str, Any] | bytes],
    *,
    key_field: str,
) -> list[str]:
    """Produce records as the ingestor does (idempotent, acks=all, key, headers).

    Returns:
        The ingest ids, in order. Raises if any record is not acknowledged.
    """
    producer = Producer(producer_config(kafka))
    failures: list[str] = []
    ingest_ids = []
    for record in records:
        ingest_id = f"ing-{uuid.uuid4().hex[:16]}"
        ingest_ids.append(ingest_id)
        if isinstance(record, bytes):
            key, value = None, record
        else:
            key, value = str(record.get(key_field, "")).encode(), json.dumps(record).encode()
        producer.produce(
            topic,
            key=key,
            value=value,
            headers=[
                ("ingest_id", ingest_id.encode()),
                ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ("content-type", b"application/json"),
            ],
            on_delivery=lambda err, _msg: failures.append(str(err)) if err else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0, "records left unacknowledged"
    assert not failures, failures
    return ingest_ids


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --------------------------------------------------------------------------- job processes


@dataclass
class JobProcess:
    """A Spark job in its own process group (driver Python + its JVM), logging to a file."""

    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, module: str, args: Sequence[str], log: Path) -> JobProcess:
        """Start `python -m <module> <args>` in a new session (so it can be killed whole)."""
        handle = log.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        handle.close()
        return cls(process, log)

    def kill(self) -> None:
        """SIGKILL the whole process group: the Python driver and its JVM, mid-whatever."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait(self, timeout_s: float) -> int:
        """Wait for the job to exit; its exit code (the log is shown on timeout)."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"job did not finish in {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The end of the job's log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def landing_args(lake: Lake, topic_prefix: str, entity: Entity, heartbeat: Path) -> list[str]:
    """Command-line arguments that point the landing job at a test's lake and topics."""
    return [
        "--lake-prefix",
        lake.prefix,
        "--topic-prefix",
        topic_prefix,
        "--entity",
        f"{entity.domain}/{entity.name}",
        "--heartbeat-path",
        str(heartbeat),
        # No /metrics endpoint: the platform's own landing job may hold the port.
        "--metrics-port",
        "0",
    ]


def money(value: Any) -> Decimal:
    """A contract amount as `Decimal` (the factories send floats and strings)."""
    return Decimal(str(value))


def day(timestamp: str) -> date:
    """The UTC date of a contract timestamp (naive means UTC)."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def end_offsets(kafka: KafkaSettings, topics: list[str]) -> dict[str, dict[str, int]]:
    """The end offsets of `topics` as Spark's `startingOffsets` JSON object (before a test)."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "e2e-offsets"})
    try:
        found: dict[str, dict[str, int]] = {}
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            found[topic] = {
                str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            }
        return found
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the broker

CLI = str(Path(sys.executable).parent / "dataplatform")


def broker_pid() -> int:
    """The PID of the platform's Kafka broker (supervisord's), 0 when it is not running."""
    out = subprocess.run(
        [CLI, "supervisorctl", "pid", "kafka"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return int(out) if out.isdigit() and int(out) > 0 else 0


def broker_up(kafka: KafkaSettings) -> bool:
    """True when the broker answers a metadata request."""
    try:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
        return bool(admin.list_topics(timeout=2).brokers)
    except Exception:
        return False


@pytest.fixture
def broker_restored(kafka_settings: KafkaSettings) -> Iterator[None]:
    """Whatever happens in the test, leave a running broker behind."""
    yield
    if not broker_up(kafka_settings):
        subprocess.run([CLI, "supervisorctl", "start", "kafka"], cwd=ROOT, check=False)
        wait_for(lambda: broker_up(kafka_settings), 180, "the broker to come back")
