from __future__ import annotations

import os
import signal

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from dataplatform.clients.kafka import ensure_topics, producer_config
from dataplatform.native import supervisor
from dataplatform.native.base import Context, wait_until
from dataplatform.native.services import SERVICES
from dataplatform.settings import KafkaSettings
from tests.factories import unique


def _consume_all(settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 60) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": unique("tests"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    try:
        wait_until(
            lambda: (
                messages.extend(
                    m for m in consumer.consume(num_messages=1000, timeout=1) if m.error() is None
                )
                or len(messages) >= expected
            ),
            timeout_s=timeout_s,
            interval_s=0,
        )
    finally:
        consumer.close()
    return messages


@pytest.fixture
def topic(kafka_settings: KafkaSettings) -> str:
    name = unique("tests.native")
    ensure_topics(kafka_settings, [name])
    return name


def test_kafka_produce_acks_all_consume_back_with_key_and_headers(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    producer = Producer(producer_config(kafka_settings))
    reports: list = []
    for i in range(10):
        producer.produce(
            topic,
            key=f"FT-{i}".encode(),
            value=b'{"n": %d}' % i,
            headers=[("ingest_id", f"ing-{i}".encode())],
            on_delivery=lambda err, msg: reports.append((err, msg)),
        )
    assert producer.flush(30) == 0
    assert [err for err, _ in reports] == [None] * 10
    messages = _consume_all(kafka_settings, topic, expected=10)
    got = sorted((m.key().decode(), m.value(), dict(m.headers())["ingest_id"]) for m in messages)
    assert got == sorted((f"FT-{i}", b'{"n": %d}' % i, f"ing-{i}".encode()) for i in range(10))


def test_kafka_sigkill_broker_loses_no_acknowledged_message(
    platform: Context, kafka_settings: KafkaSettings, topic: str
) -> None:
    producer = Producer({**producer_config(kafka_settings), "message.timeout.ms": 120_000})
    acked: list[str] = []
    failed: list[str] = []

    def report(err: KafkaError | None, msg) -> None:
        (failed if err else acked).append(msg.key().decode())

    kill_at = 2_000
    total = 6_000
    old_pid = supervisor.process_info(platform)["kafka"]["pid"]
    for i in range(total):
        if i == kill_at:
            producer.flush(30)
            os.kill(old_pid, signal.SIGKILL)
        producer.produce(topic, key=f"k-{i}".encode(), value=b"x" * 100, on_delivery=report)
        producer.poll(0)
    # supervisord restarts the broker (an unexpected exit); the idempotent producer retries.
    assert wait_until(
        lambda: supervisor.process_info(platform)["kafka"]["pid"] not in (0, old_pid), 60
    )
    assert wait_until(lambda: SERVICES["kafka"].probe(platform), 120)
    assert producer.flush(150) == 0
    assert len(acked) >= kill_at
    messages = _consume_all(kafka_settings, topic, expected=len(acked), timeout_s=120)
    keys = [m.key().decode() for m in messages]
    assert set(acked) <= set(keys), f"{len(set(acked) - set(keys))} acknowledged messages lost"
    assert len(keys) == len(set(keys)), "duplicates after the broker restart"


def test_kafka_platform_topics_exist(kafka_settings: KafkaSettings) -> None:
    from confluent_kafka.admin import AdminClient

    topics = (
        AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers})
        .list_topics(timeout=10)
        .topics
    )
    for name in ("finance.transactions.v1", "insurance.claims.v1"):
        assert name in topics
        assert len(topics[name].partitions) == kafka_settings.partitions


def test_kafka_partition_offsets_readable(kafka_settings: KafkaSettings, topic: str) -> None:
    producer = Producer(producer_config(kafka_settings))
    producer.produce(topic, key=b"a", value=b"1", partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": kafka_settings.bootstrap_servers, "group.id": unique("g")}
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    assert (low, high) == (0, 1)
