"""Where records are after the sink: the progress landing reports to the ingest schema.

`GET /ingest/{id}` answers from these rows instead of a row per record (docs/API.md,
receipts), and an `Idempotency-Key` replay after a topic was recreated asks them whether each
record landed or was restored (`kafka_restores`, written by `dataplatform backup kafka-restore`).
Landing writes, after each micro-batch, the end offset it committed per partition
(`landing_progress`) and, before that, the ingest ids and reasons of the records it quarantined
(`quarantined_records`). Both are bookkeeping: when PostgreSQL is down the writes are logged and
skipped, and the next micro-batch's progress covers the offsets of the one that was missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import NamedTuple

import psycopg

from dataplatform.db.migrate import search_path
from dataplatform.settings import PostgresSettings

log = logging.getLogger(__name__)


class PartitionProgress(NamedTuple):
    """Every offset below `end_offset` of the partition has landed."""

    topic_id: str
    topic: str
    entity: str
    partition: int
    end_offset: int


class RestoredRange(NamedTuple):
    """Offsets `first_offset` to `end_offset - 1` of the lost topic's partition were restored."""

    topic_id: str
    partition: int
    first_offset: int
    end_offset: int


def record_restored(postgres: PostgresSettings, schema: str, rows: Sequence[RestoredRange]) -> None:
    """Record what a Kafka restore brought back (`kafka_restores`), in one transaction.

    Unlike landing's progress this is not skipped when PostgreSQL fails: without it, a client
    resending a restored record with its Idempotency-Key would get it published a second time.

    Raises:
        psycopg.Error: Nothing was recorded.
    """
    with psycopg.connect(postgres.conninfo()) as conn:
        conn.execute(search_path(schema))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO kafka_restores (topic_id, kafka_partition, first_offset, end_offset)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [tuple(row) for row in rows],
            )


class ProgressWriter:
    """Writes landing's progress over one connection (reopened after a failure)."""

    def __init__(self, postgres: PostgresSettings, schema: str) -> None:
        """Configure; the connection opens on the first write."""
        self._postgres = postgres
        self._schema = schema
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def landed(self, rows: Sequence[PartitionProgress]) -> None:
        """Record the committed end offsets of a micro-batch."""
        if rows:
            self._write(
                "INSERT INTO landing_progress"
                " (topic_id, topic, entity, kafka_partition, end_offset)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [tuple(row) for row in rows],
            )

    def quarantined(self, entity: str, rows: Sequence[tuple[str, str]]) -> None:
        """Record `(ingest id, reason)` of the records landing refused."""
        if rows:
            self._write(
                "INSERT INTO quarantined_records (ingest_id, entity, reason)"
                " VALUES (%s, %s, %s) ON CONFLICT (ingest_id) DO NOTHING",
                [(ingest_id, entity, reason) for ingest_id, reason in rows],
            )

    def _write(self, statement: str, params: list[tuple[object, ...]]) -> None:
        with self._lock:
            try:
                conn = self._connect()
                with conn.cursor() as cur:
                    cur.executemany(statement, params)
                conn.commit()
            except psycopg.Error as exc:
                log.warning("could not record landing progress (receipts lag): %s", exc)
                self.close()

    def _connect(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._postgres.conninfo())
            self._conn.execute(search_path(self._schema))
        return self._conn

    def close(self) -> None:
        """Close the connection (a later write opens a new one)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
