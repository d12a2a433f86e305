"""Where records are after the sink: the progress landing and curation report to the ingest
schema.

`GET /ingest/{id}` answers from these rows instead of a row per record (docs/API.md,
receipts), and an `Idempotency-Key` replay after a topic was recreated asks them whether each
record landed or was restored (`kafka_restores`, written by `dataplatform backup kafka-restore`).
Landing writes, after each micro-batch, the end offset it committed per partition
(`landing_progress`) and, before that, the ingest ids and reasons of the records it quarantined
(`quarantined_records`); each progress row also names the bronze table and the Delta version the
micro-batch appended. Curation writes, after each entity's run, the bronze version it processed
through (`curation_progress`): a record is curated once that version reaches its own, unless
curation quarantined it: the ingest ids and reasons of those go to `quarantined_records` (job
`curation`) in the same transaction as the run's progress row. All of it is bookkeeping: when
PostgreSQL is down the writes are logged and skipped, and the next micro-batch's (or run's)
progress covers what was missed (a curation run first asks which version was reported last,
`last_curated`, and adds the quarantined records of the versions after it).
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
    """Every offset below `end_offset` of the partition has landed.

    `bronze_version` is the bronze Delta version the micro-batch appended (or a later one of
    the same table, never an earlier one); None when it appended nothing (a replayed batch).
    """

    topic_id: str
    topic: str
    entity: str
    partition: int
    end_offset: int
    bronze_table: str | None = None
    bronze_version: int | None = None


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
    """Writes landing's or curation's progress over one connection (reopened after a
    failure)."""

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
                (
                    "INSERT INTO landing_progress (topic_id, topic, entity, kafka_partition,"
                    " end_offset, bronze_table, bronze_version)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [tuple(row) for row in rows],
                )
            )

    def quarantined(self, entity: str, rows: Sequence[tuple[str, str]]) -> None:
        """Record `(ingest id, reason)` of the records landing refused."""
        if rows:
            self._write(
                (
                    "INSERT INTO quarantined_records (ingest_id, entity, reason)"
                    " VALUES (%s, %s, %s) ON CONFLICT (ingest_id) DO NOTHING",
                    [(ingest_id, entity, reason) for ingest_id, reason in rows],
                )
            )

    def last_curated(self, bronze_table: str) -> int | None:
        """The last bronze version curation reported for `bronze_table` (-1 when none); None
        when PostgreSQL cannot be read (logged)."""
        with self._lock:
            try:
                conn = self._connect()
                row = conn.execute(
                    "SELECT max(bronze_version) FROM curation_progress WHERE bronze_table = %s",
                    (bronze_table,),
                ).fetchone()
                conn.commit()
            except psycopg.Error as exc:
                log.warning("could not read curation progress (receipts lag): %s", exc)
                self.close()
                return None
        return -1 if row is None or row[0] is None else int(row[0])

    def curated(
        self,
        *,
        bronze_table: str,
        entity: str,
        bronze_version: int,
        quarantined: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record that curation processed `bronze_table` up to `bronze_version`, and the
        records it quarantined, in one transaction: a receipt that reads the progress already
        knows which records are not in silver.

        Args:
            bronze_table: The table's `s3://` URI, as landing and the exporter name it
                (`Lake.table("bronze", entity, scheme="s3")`).
            entity: `<domain>.<entity>`.
            bronze_version: Every version up to this one is in silver and gold, but for the
                records curation quarantined.
            quarantined: `(ingest id, reason)` of the records curation quarantined that no
                earlier report recorded (recording one again changes nothing).
        """
        self._write(
            (
                "INSERT INTO quarantined_records (ingest_id, entity, reason, job)"
                " VALUES (%s, %s, %s, 'curation') ON CONFLICT (ingest_id) DO NOTHING",
                [(ingest_id, entity, reason) for ingest_id, reason in quarantined],
            ),
            (
                "INSERT INTO curation_progress (bronze_table, entity, bronze_version)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(bronze_table, entity, bronze_version)],
            ),
        )

    def _write(self, *statements: tuple[str, list[tuple[object, ...]]]) -> None:
        """Run each statement over its parameter rows (none: skipped), in one transaction."""
        with self._lock:
            try:
                conn = self._connect()
                with conn.cursor() as cur:
                    for statement, params in statements:
                        if params:
                            cur.executemany(statement, params)
                conn.commit()
            except psycopg.Error as exc:
                log.warning("could not record progress (receipts lag): %s", exc)
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
