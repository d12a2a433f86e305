"""Kafka topic backup to S3 and replay into a recreated topic, on the real broker and S3.

Each test uses its own topic (`tests.kafka-backup.<uuid>`) and its own backup folder
(`tests/kafka-backup/<uuid>`), deleted afterwards.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from dataplatform.clients.kafka import client_config, producer_config
from dataplatform.clients.s3 import delete_prefix, s3_client
from dataplatform.db.migrate import search_path
from dataplatform.ingest_ids import url_safe_topic_id
from dataplatform.kafka_backup import (
    KafkaBackupError,
    Record,
    backup_topics,
    latest_backup,
    read_manifest,
    read_partition,
    registered_epoch,
    restore_topics,
)
from dataplatform.settings import KafkaSettings, PostgresSettings, S3Settings
from fastapi_app.testing import temporary_schema

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 3


@pytest.fixture
def folder(s3_settings: S3Settings) -> Iterator[str]:
    relative = f"tests/kafka-backup/{uuid.uuid4().hex}"
    yield relative
    delete_prefix(s3_settings, relative)


@pytest.fixture
def topic(kafka_settings: KafkaSettings) -> Iterator[str]:
    name = f"tests.kafka-backup.{uuid.uuid4().hex}"
    admin = AdminClient(client_config(kafka_settings))
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])[
        name
    ].result()
    yield name
    _delete_topic(admin, name)


def _delete_topic(admin: AdminClient, name: str) -> None:
    if name not in admin.list_topics(timeout=10).topics:
        return
    admin.delete_topics([name], operation_timeout=30)[name].result()
    deadline = time.monotonic() + 30
    while name in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {name} still listed 30 s after deletion"
        time.sleep(0.2)


def _produce(kafka: KafkaSettings, topic: str) -> dict[int, list[Record]]:
    """Records with everything a backup must keep: null keys/values, binary, repeated headers."""
    producer = Producer(producer_config(kafka))
    sent: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
    for i in range(60):
        partition = i % PARTITIONS
        key = None if i % 11 == 0 else f"K-{i % 7}".encode()
        value = None if i % 13 == 0 else json.dumps({"i": i, "amount": "1.10"}).encode()
        headers = [("ingest_id", uuid.uuid4().bytes), ("bin", bytes([i, 0, 255])), ("bin", None)]
        timestamp = 1764500000000 + i * 1000
        producer.produce(
            topic, value=value, key=key, partition=partition, headers=headers, timestamp=timestamp
        )
        sent[partition].append(Record(0, 1, timestamp, key, value, tuple(headers)))
    assert producer.flush(30) == 0
    return sent


def _read_all(kafka: KafkaSettings, topic: str) -> dict[int, list[Record]]:
    consumer = Consumer(
        {
            **client_config(kafka),
            "group.id": f"tests-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
        }
    )
    found = {}
    try:
        for partition in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            found[partition] = list(read_partition(consumer, topic, partition, low, high))
    finally:
        consumer.close()
    return found


def test_restore_kafka_backup_recreated_topic_exact_records(
    kafka_settings: KafkaSettings,
    s3_settings: S3Settings,
    postgres_settings: PostgresSettings,
    topic: str,
    folder: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _produce(kafka_settings, topic)
    uri = backup_topics(kafka=kafka_settings, s3=s3_settings, topics=[topic], folder=folder)
    assert latest_backup(s3_settings, folder=folder) == uri
    manifest = read_manifest(s3_settings, uri)
    [backed_up] = manifest.topics
    assert [(p.partition, p.low, p.high, p.records) for p in backed_up.partitions] == [
        (p, 0, len(sent[p]), len(sent[p])) for p in range(PARTITIONS)
    ]

    _delete_topic(AdminClient(client_config(kafka_settings)), topic)
    with temporary_schema(postgres_settings) as schema:
        monkeypatch.setenv("INGEST_DB_SCHEMA", schema)
        [report] = restore_topics(kafka=kafka_settings, s3=s3_settings, uri=uri, topics=[topic])
        # What a client's Idempotency-Key resend asks: which offsets of the lost topic came back.
        ranges = [
            (url_safe_topic_id(backed_up.topic_id), p, 0, len(sent[p])) for p in range(PARTITIONS)
        ]
        assert _restored_ranges(postgres_settings, schema) == ranges
        # PostgreSQL unreachable: the restore says how to record it later (`--record-only`).
        nobody = postgres_settings.model_copy(update={"port": 9})
        with pytest.raises(KafkaBackupError, match=f"kafka-restore {uri} --record-only"):
            restore_topics(
                kafka=kafka_settings, s3=s3_settings, uri=uri, postgres=nobody, record_only=True
            )
        restore_topics(kafka=kafka_settings, s3=s3_settings, uri=uri, record_only=True)
        assert _restored_ranges(postgres_settings, schema) == ranges
    assert report.records == 60
    assert report.offsets_preserved
    assert report.source_epoch is None

    restored = _read_all(kafka_settings, topic)
    for partition in range(PARTITIONS):
        # Same order per partition, same offsets, same bytes: key, value, headers, timestamp.
        assert [r.offset for r in restored[partition]] == list(range(len(sent[partition])))
        assert [r.content() for r in restored[partition]] == sent[partition]
    admin = AdminClient(client_config(kafka_settings))
    described = admin.describe_topics(TopicCollection([topic]))[topic].result()
    assert str(described.topic_id) != backed_up.topic_id


def _restored_ranges(postgres: PostgresSettings, schema: str) -> list[tuple[str, int, int, int]]:
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        rows = conn.execute(
            "SELECT topic_id, kafka_partition, first_offset, end_offset FROM kafka_restores"
            " ORDER BY kafka_partition"
        ).fetchall()
    return [tuple(row) for row in rows]


def test_restore_kafka_backup_nonempty_topic_refused(
    kafka_settings: KafkaSettings, s3_settings: S3Settings, topic: str, folder: str
) -> None:
    _produce(kafka_settings, topic)
    uri = backup_topics(kafka=kafka_settings, s3=s3_settings, topics=[topic], folder=folder)
    with pytest.raises(KafkaBackupError, match="already holds 20 records"):
        restore_topics(kafka=kafka_settings, s3=s3_settings, uri=uri, topics=[topic])


def test_restore_kafka_backup_damaged_file_refused(
    kafka_settings: KafkaSettings, s3_settings: S3Settings, topic: str, folder: str
) -> None:
    _produce(kafka_settings, topic)
    uri = backup_topics(kafka=kafka_settings, s3=s3_settings, topics=[topic], folder=folder)
    part = read_manifest(s3_settings, uri).topics[0].partitions[1]
    # Replace partition 1's file by partition 0's: valid records, wrong ones.
    other = read_manifest(s3_settings, uri).topics[0].partitions[0]
    client = s3_client(s3_settings)
    client.copy_object(
        Bucket=s3_settings.bucket,
        Key=part.key,
        CopySource={"Bucket": s3_settings.bucket, "Key": other.key},
    )
    _delete_topic(AdminClient(client_config(kafka_settings)), topic)
    with pytest.raises(KafkaBackupError, match="damaged backup"):
        restore_topics(kafka=kafka_settings, s3=s3_settings, uri=uri, topics=[topic])


def test_find_registered_epoch_landed_topic(s3_settings: S3Settings, folder: str) -> None:
    registry = {
        "topics": [
            {"topic": "finance.transactions.v1", "topic_id": "old-id", "epoch": 1},
            {"topic": "finance.transactions.v1", "topic_id": "newer-id", "epoch": 2},
        ]
    }
    s3_client(s3_settings).put_object(
        Bucket=s3_settings.bucket,
        Key=f"{folder}/_state/source_epochs/finance/transactions.json",
        Body=json.dumps(registry).encode(),
    )
    find = registered_epoch
    assert find(s3_settings, "finance.transactions.v1", "newer-id", lake_prefix=folder) == 2
    assert find(s3_settings, "finance.transactions.v1", "unseen-id", lake_prefix=folder) is None
    assert find(s3_settings, "insurance.claims.v1", "old-id", lake_prefix=folder) is None
