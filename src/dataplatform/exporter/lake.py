"""Move outbox rows into `bronze/<domain>/<entity>` with delta-rs, in batches, exactly once.

Exactly once across crashes, by construction:

1. Rows are assigned to a batch first: `outbox.export_version = v` is committed in Postgres
   before anything is written to Delta. `v` only grows, per entity.
2. The Delta commit carries an app transaction `(app_id, v)` (`txnAppId`/`txnVersion` in the
   Delta log), written atomically with the data.
3. Only then are the rows marked `exported_at`.

After a crash between 2 and 3, the next run finds rows with `export_version = v` not marked
exported; if the table's transaction version for `app_id` is already `>= v`, the data is in
the table and only the marking is repeated; otherwise the same rows are written again under
the same `v`. A Postgres advisory lock per entity keeps two exporters off the same batches;
the table's commit lock (`dataplatform.lakelock`) keeps every other writer of the bronze table
(the landing job, OPTIMIZE) off its Delta log while delta-rs writes.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
from deltalake import (
    CommitProperties,
    DeltaTable,
    PostCommitHookProperties,
    Transaction,
    write_deltalake,
)
from prometheus_client import Counter, Gauge, Histogram

from dataplatform.contracts import ENTITIES, Entity
from dataplatform.contracts.bronze import (
    BRONZE_COLUMNS,
    BRONZE_PARTITION_COLUMNS,
    OUTBOX_EPOCH,
    DeltaType,
)
from dataplatform.db.migrate import migrate, search_path
from dataplatform.delta_checkpoints import checkpoint_due, write_checkpoint
from dataplatform.ingest_ids import IngestIds
from dataplatform.lake import Lake, get_lakehouse_settings
from dataplatform.lakelock import table_commit_lock
from dataplatform.settings import ExporterSettings, PostgresSettings, ReceiptSettings

log = logging.getLogger(__name__)

ROWS = Counter("exporter_rows_total", "Outbox rows written to bronze.", ["entity"])
BATCHES = Counter(
    "exporter_batches_total",
    "Export batches by outcome: written, or recovered (commit found after a crash).",
    ["entity", "outcome"],
)
COMMIT_SECONDS = Histogram(
    "exporter_delta_commit_seconds",
    "Time to write one batch to Delta.",
    ["entity"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BACKLOG = Gauge("exporter_backlog_rows", "Outbox rows not yet exported.", ["entity"])
ERRORS = Counter("exporter_errors_total", "Polls that failed (Postgres or S3 errors).")
POLLS = Counter("exporter_polls_total", "Polls that finished without error, rows to export or not.")
LAST_SUCCESS = Gauge(
    "exporter_last_success_timestamp_seconds", "When the last poll finished without error."
)

_ARROW_TYPES: dict[DeltaType, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def bronze_arrow_schema() -> pa.Schema:
    """The Arrow schema of `BRONZE_COLUMNS` (Delta `timestamp` = UTC-adjusted microseconds)."""
    return pa.schema(
        [
            pa.field(name, _ARROW_TYPES[kind], nullable=nullable)
            for name, kind, nullable, _ in BRONZE_COLUMNS
        ]
    )


@dataclass(frozen=True)
class ExportedBatch:
    """One batch moved to bronze."""

    entity: str
    version: int
    rows: int
    #: Delta table version of the commit; None when the commit was found already done.
    delta_version: int | None
    #: The batch was left pending by an earlier run that crashed.
    recovered: bool


def _label(entity: Entity) -> str:
    return f"{entity.domain}.{entity.name}"


class LakeExporter:
    """Drains the outbox of one Postgres schema into the bronze tables."""

    def __init__(
        self,
        postgres: PostgresSettings,
        lake: Lake,
        settings: ExporterSettings,
        *,
        ids: IngestIds | None = None,
    ) -> None:
        """Configure; nothing connects until `export_once()`.

        Args:
            postgres: Where the outbox is.
            lake: Where the bronze tables are (`Lake.load()`: `LAKEHOUSE_LAKE_PREFIX`).
            settings: The exporter's own settings.
            ids: Signs the rows' ingest ids as the ingestor did; default `RECEIPT_SECRET`.
        """
        self._ids = ids or ReceiptSettings().ids()
        self._postgres = postgres
        self._lake = lake
        self._settings = settings
        self._schema = bronze_arrow_schema()

    def table_uri(self, entity: Entity) -> str:
        """`s3://<bucket>/[<prefix>/]bronze/<domain>/<entity>`."""
        return self._lake.table("bronze", entity, scheme="s3")

    def app_id(self, entity: Entity) -> str:
        """Delta app-transaction id: one per outbox (schema) and entity."""
        return f"dataplatform-lake-exporter:{self._settings.db_schema}:{_label(entity)}"

    def migrate(self) -> list[str]:
        """Create/upgrade the ingest schema (shared with the ingestor)."""
        return migrate(self._postgres.conninfo(), self._settings.db_schema)

    def export_once(self) -> list[ExportedBatch]:
        """Export every pending row of every entity (several batches if needed)."""
        done: list[ExportedBatch] = []
        with psycopg.connect(self._postgres.conninfo(), autocommit=True) as conn:
            conn.execute(search_path(self._settings.db_schema))
            for entity in ENTITIES:
                label = _label(entity)
                lock = zlib.crc32(f"{self._settings.db_schema}:{label}".encode())
                locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone()
                if not locked or not locked[0]:
                    log.info("another exporter holds %s; skipping it this round", label)
                    continue
                try:
                    while True:
                        batch = self._export_batch(conn, entity)
                        if batch is None:
                            break
                        done.append(batch)
                        if batch.rows < self._settings.batch_size and not batch.recovered:
                            break
                    backlog = conn.execute(
                        "SELECT count(*) FROM outbox WHERE entity = %s AND exported_at IS NULL",
                        (label,),
                    ).fetchone()
                    BACKLOG.labels(label).set(backlog[0] if backlog else 0)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
        return done

    def _delta_txn_version(self, entity: Entity) -> int | None:
        uri = self.table_uri(entity)
        options = self._lake.s3.delta_storage_options()
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return None
        return DeltaTable(uri, storage_options=options).transaction_version(self.app_id(entity))

    @staticmethod
    def _has_new_rows(conn: psycopg.Connection[Any], label: str) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE entity = %s"
            " AND exported_at IS NULL AND export_version IS NULL)",  # the partial index
            (label,),
        ).fetchone()
        return bool(row and row[0])

    def _export_batch(self, conn: psycopg.Connection[Any], entity: Entity) -> ExportedBatch | None:
        label = _label(entity)
        recovered = False
        row = conn.execute(
            "SELECT min(export_version) FROM outbox"
            " WHERE entity = %s AND export_version IS NOT NULL AND exported_at IS NULL",
            (label,),
        ).fetchone()
        pending_version = row[0] if row else None
        if pending_version is None and not self._has_new_rows(conn, label):
            # Idle: answer from Postgres alone. Opening the Delta table replays its log, which
            # on a bronze table the landing job also writes costs a good part of a core and a
            # busy S3 server when done every poll.
            return None
        committed = self._delta_txn_version(entity)
        if pending_version is not None:
            if committed is not None and committed >= pending_version:
                # Crashed after the Delta commit: the data is there, only marking is left.
                rows = self._mark_exported(conn, entity, pending_version, delta_version=None)
                BATCHES.labels(label, "recovered").inc()
                log.warning(
                    "batch %d of %s was already committed to Delta; marked %d rows exported",
                    pending_version,
                    label,
                    rows,
                )
                return ExportedBatch(label, pending_version, rows, None, recovered=True)
            version = pending_version
            recovered = True
            records = conn.execute(
                "SELECT id, ingest_id, record_key, payload, ingested_at, principal FROM outbox"
                " WHERE entity = %s AND export_version = %s ORDER BY id",
                (label, version),
            ).fetchall()
        else:
            top = conn.execute(
                "SELECT coalesce(max(export_version), 0) FROM outbox WHERE entity = %s", (label,)
            ).fetchone()
            version = max(top[0] if top else 0, committed or 0) + 1
            # Assign the batch before writing: this is what makes a crash recoverable.
            records = conn.execute(
                "UPDATE outbox SET export_version = %s WHERE id IN ("
                " SELECT id FROM outbox WHERE entity = %s AND export_version IS NULL"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, ingest_id, record_key, payload, ingested_at, principal",
                (version, label, self._settings.batch_size),
            ).fetchall()
            if not records:
                return None
            records.sort(key=lambda r: r[0])
        delta_version = self._write(entity, version, records)
        rows = self._mark_exported(conn, entity, version, delta_version=delta_version)
        ROWS.labels(label).inc(rows)
        BATCHES.labels(label, "written").inc()
        log.info(
            "exported batch %d of %s: %d rows, delta version %d",
            version,
            label,
            rows,
            delta_version,
        )
        return ExportedBatch(label, version, rows, delta_version, recovered=recovered)

    def _write(self, entity: Entity, version: int, records: list[tuple[Any, ...]]) -> int:
        started = time.perf_counter()
        landed_at = datetime.now(UTC)
        ingested = [r[4].astimezone(UTC) for r in records]
        columns = {
            # Rows from before signed ids keep the UUID their receipt named.
            "ingest_id": [str(r[1]) if r[1] else self._ids.outbox(r[0], r[5]) for r in records],
            "record_key": [r[2] for r in records],
            "payload": [r[3] for r in records],
            "source": ["outbox"] * len(records),
            "kafka_topic": [None] * len(records),
            "kafka_partition": [None] * len(records),
            "kafka_offset": [None] * len(records),
            "outbox_id": [r[0] for r in records],
            "ingested_at": ingested,
            "landed_at": [landed_at] * len(records),
            "ingest_date": [moment.date() for moment in ingested],
            # The order token: outbox ids follow the order requests were accepted in.
            "source_epoch": [OUTBOX_EPOCH] * len(records),
            "source_offset": [r[0] for r in records],
            # The outbox does not keep the request's trace context.
            "trace_id": [None] * len(records),
        }
        table = pa.Table.from_pydict(columns, schema=self._schema)
        uri = self.table_uri(entity)
        options = self._lake.s3.delta_storage_options()
        # delta-rs picks the version and puts `N.json` inside Rust: the lock spans the whole
        # write so no Spark commit to the same table can land in between.
        with table_commit_lock(self._postgres, uri):
            write_deltalake(
                uri,
                table,
                mode="append",
                partition_by=list(BRONZE_PARTITION_COLUMNS),
                # A bronze table from before the order token or the trace id gains its nullable
                # columns.
                schema_mode="merge",
                # As landing creates bronze (applied when this write creates the table): curation
                # reads bronze's change feed, also after the starter track was switched to Kafka.
                configuration={"delta.enableChangeDataFeed": "true"},
                storage_options=options,
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(self.app_id(entity), version)]
                ),
                # As landing does: the checkpoint is written below, outside the lock, so the
                # table's other writers never wait for one (`dataplatform.delta_checkpoints`).
                post_commithook_properties=PostCommitHookProperties(create_checkpoint=False),
            )
        COMMIT_SECONDS.labels(_label(entity)).observe(time.perf_counter() - started)
        delta_version = DeltaTable(uri, storage_options=options).version()
        if checkpoint_due(delta_version, get_lakehouse_settings().bronze_checkpoint_interval):
            write_checkpoint(uri, delta_version, options)
        return delta_version

    def _mark_exported(
        self,
        conn: psycopg.Connection[Any],
        entity: Entity,
        version: int,
        *,
        delta_version: int | None,
    ) -> int:
        # The table names the version for the receipts' `curated` stage (`curation_progress`).
        table = self.table_uri(entity)
        cur = conn.execute(
            "UPDATE outbox SET exported_at = now(), delta_version = %s, bronze_table = %s"
            " WHERE entity = %s AND export_version = %s AND exported_at IS NULL",
            (delta_version, table, _label(entity), version),
        )
        return cur.rowcount

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set: export what is pending, then wait `poll_interval_s`."""
        while not stop.is_set():
            try:
                self.migrate()
                break
            except psycopg.Error as exc:
                log.warning("cannot reach Postgres to migrate (%s); retrying", exc)
                stop.wait(self._settings.poll_interval_s)
        while not stop.is_set():
            try:
                self.export_once()
                POLLS.inc()
                LAST_SUCCESS.set_to_current_time()
            except Exception:
                ERRORS.inc()
                log.exception("export failed; retrying after the poll interval")
            stop.wait(self._settings.poll_interval_s)
