"""`dataplatform down` + `up`: nothing left running, nothing lost."""

from __future__ import annotations

import psycopg
from confluent_kafka import Producer

from dataplatform.clients.kafka import ensure_topics, producer_config
from dataplatform.clients.s3 import s3_client
from dataplatform.native import runtime, supervisor
from dataplatform.native.services import Context
from tests.factories import unique
from tests.integration.test_native_kafka import _consume_all


def test_down_leaves_no_process_and_up_keeps_data(platform: Context, test_track: str) -> None:
    marker = unique("lifecycle")
    with psycopg.connect(platform.postgres.conninfo()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_lifecycle (marker text PRIMARY KEY)")
        conn.execute("INSERT INTO test_lifecycle VALUES (%s)", (marker,))
    s3 = s3_client(platform.s3)
    s3.put_object(Bucket=platform.s3.bucket, Key=f"tests/{marker}", Body=marker.encode())
    topic = unique("tests.lifecycle")
    ensure_topics(platform.kafka, [topic])
    producer = Producer(producer_config(platform.kafka))
    producer.produce(topic, key=marker.encode(), value=b"kept")
    assert producer.flush(30) == 0

    daemon = supervisor.supervisord_pid(platform)
    assert daemon is not None
    before = runtime.descendants(daemon)
    assert len(before) > len(runtime.status(platform, test_track))  # daemon + every service

    try:
        stopped = runtime.down(platform)
        # Every process of the snapshot is gone (one may have ended on its own before `down`
        # listed the processes: Spark's Python workers come and go), and so is all it stopped.
        assert [pid for pid in before if runtime.alive(pid)] == []
        assert [pid for pid in stopped if runtime.alive(pid)] == []
    finally:
        runtime.up(platform, test_track)  # the tests after this one need the platform
    with psycopg.connect(platform.postgres.conninfo()) as conn:
        assert conn.execute("SELECT 1 FROM test_lifecycle WHERE marker = %s", (marker,)).fetchone()
    assert (
        s3_client(platform.s3)
        .get_object(Bucket=platform.s3.bucket, Key=f"tests/{marker}")["Body"]
        .read()
        == marker.encode()
    )
    messages = _consume_all(platform.kafka, topic, expected=1)
    assert [(m.key(), m.value()) for m in messages] == [(marker.encode(), b"kept")]
