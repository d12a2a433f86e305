"""Helpers for tests against the real services: a live ingestor process and a throwaway
ingest schema. Used by `tests/integration` and `tests/e2e`; not imported by the service."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import Consumer, Message, TopicPartition
from psycopg import sql

from dataplatform.db.apikeys import create as create_key
from dataplatform.db.migrate import migrate
from dataplatform.settings import KafkaSettings, PostgresSettings, ReceiptSettings


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def temporary_schema(postgres: PostgresSettings) -> Iterator[str]:
    """A freshly migrated ingest schema with a unique name, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    migrate(postgres.conninfo(), schema)
    try:
        yield schema
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def create_api_key(postgres: PostgresSettings, schema: str) -> str:
    """A new API key in `schema`."""
    key, _ = create_key(postgres.conninfo(), schema, name="tests")
    return key


@dataclass
class LiveIngestor:
    """A running `dataplatform run ingestor` process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        """What the process logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def live_ingestor(env: dict[str, str], *, start_timeout_s: float = 60.0) -> Iterator[LiveIngestor]:
    """Start the ingestor with `env` overrides on a free port; stop it (by its PID) afterwards.

    Args:
        env: Variables on top of the current environment (e.g. `INGESTOR_SINK`,
            `INGEST_DB_SCHEMA`).
        start_timeout_s: How long to wait for `/health`.
    """
    port = free_port()
    full_env = {**os.environ, **env, "INGESTOR_HOST": "127.0.0.1", "INGESTOR_PORT": str(port)}
    cli = Path(sys.executable).parent / "dataplatform"
    handle, log_name = tempfile.mkstemp(prefix="ingestor-", suffix=".log")
    os.close(handle)
    log_path = Path(log_name)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(cli), "run", "ingestor"], env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    live = LiveIngestor(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ingestor exited with {process.returncode}:\n{live.log_text()}")
            try:
                if httpx.get(f"{live.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"ingestor not healthy after {start_timeout_s}s:\n{live.log_text()}"
                )
            time.sleep(0.1)
        yield live
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log_path.unlink(missing_ok=True)


def ingest_id_of(message: Message) -> str:
    """The ingest id landing computes for an ingestor's `message` (`dataplatform.ingest_ids`):
    its coordinates, signed for the API key named in its headers."""
    headers: dict[str, str] = {}
    for header in message.headers() or []:
        value = header[1]
        headers[str(header[0])] = value.decode() if isinstance(value, bytes) else str(value)
    return (
        ReceiptSettings()
        .ids()
        .kafka(
            headers["topic_id"],
            message.partition() or 0,
            message.offset() or 0,
            message.timestamp()[1],
            headers["api_key_id"],
        )
    )


def mock_cluster_topic_ids(_kafka: KafkaSettings, topics: list[str]) -> dict[str, str | None]:
    """Topic ids for librdkafka's mock cluster, which does not serve DescribeTopics (pass it as
    `KafkaPublisher(read_topic_ids=...)`)."""
    return {topic: f"mock-{topic.replace('.', '-')}" for topic in topics}


def read_partition(
    kafka: KafkaSettings, topic: str, partition: int, *, start: int, timeout_s: float = 20.0
) -> list[Message]:
    """Every message of one partition from offset `start` to its end (high watermark)."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"tests-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        _, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s
        )
        consumer.assign([TopicPartition(topic, partition, start)])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while (not messages or (messages[-1].offset() or 0) < high - 1) and start < high:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"read {len(messages)} of {high - start} messages of {topic}[{partition}]"
                )
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(str(msg.error()))
            messages.append(msg)
        return messages
    finally:
        consumer.close()
