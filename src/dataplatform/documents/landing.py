"""Land documents from the document store into bronze and silver Delta tables (delta-rs).

FerretDB v1 has no change streams: the job polls the store by ingest sequence. Each table
remembers how far it got in its own Delta log: every commit carries the app transaction
`(app_id, S)`, S being the highest ingest sequence number the commit covers, written
atomically with the data. After any crash, each table resumes after its own S, so nothing is
landed twice and nothing is skipped:

* bronze (`bronze/documents/documents`): every version, appended, raw JSON plus the extracted
  fields, in sequence order;
* silver (`silver/documents/documents`): the latest version of each document (`entity`, `id`):
  by `timestamp`, then by ingest sequence, so the order of versions never depends on timing.

Numbers taken but never inserted (a request that failed after taking one) leave gaps: a gap is
waited for `gap_grace_s` seconds, then passed. Writes hold each table's commit lock
(`dataplatform.lakelock`).

After each bronze commit the versions it holds are marked landed in the store (`landed_at`,
the bronze version), which their receipts read; marks a crash lost are redone from bronze's own
rows at the next start. Joining notes to claims is curation's (`dataplatform.documents.curation`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from dataplatform.documents import BRONZE_TABLE, SILVER_TABLE
from dataplatform.documents.store import DocumentStore, StoredDocument
from dataplatform.lake import Lake, heartbeat_healthy, write_heartbeat
from dataplatform.lakelock import table_commit_lock
from dataplatform.settings import DocumentLandingSettings, PostgresSettings, get_runtime_settings

log = logging.getLogger(__name__)


_TS = pa.timestamp("us", tz="UTC")

#: Columns both layers share: the envelope, the extracted fields and the raw body.
_DOCUMENT_FIELDS = [
    pa.field("entity", pa.string(), nullable=False),
    pa.field("document_id", pa.string(), nullable=False),
    pa.field("timestamp", _TS, nullable=False),
    pa.field("claim_id", pa.string()),
    pa.field("customer_id", pa.string()),
    pa.field("body_json", pa.string(), nullable=False),
    pa.field("ingest_id", pa.string(), nullable=False),
    pa.field("ingest_seq", pa.int64(), nullable=False),
    pa.field("principal", pa.string(), nullable=False),
    pa.field("received_at", _TS, nullable=False),
]
BRONZE_SCHEMA = pa.schema([*_DOCUMENT_FIELDS, pa.field("landed_at", _TS, nullable=False)])
SILVER_SCHEMA = pa.schema([*_DOCUMENT_FIELDS, pa.field("updated_at", _TS, nullable=False)])

#: A source version replaces the silver row when it is later: by event time, then sequence.
SILVER_NEWER = (
    "s.timestamp > t.timestamp OR (s.timestamp = t.timestamp AND s.ingest_seq > t.ingest_seq)"
)


def default_heartbeat_path() -> Path:
    """`<DATAPLATFORM_DATA_DIR>/run/document-landing/heartbeat.json`."""
    return get_runtime_settings().run_dir / "document-landing" / "heartbeat.json"


def landing_healthy() -> bool:
    """The `document-landing` service's readiness probe: a fresh `running` heartbeat."""
    return heartbeat_healthy(default_heartbeat_path())


@dataclass
class GapTracker:
    """When each missing ingest sequence number was first noticed (monotonic seconds)."""

    grace_s: float
    first_seen: dict[int, float] = field(default_factory=dict)

    def landable(
        self, after: int, documents: Iterable[StoredDocument], now: float
    ) -> list[StoredDocument]:
        """The versions that may be landed now: those up to the first gap still in its grace.

        Args:
            after: The sequence number everything up to which is landed.
            documents: Versions with higher numbers, in sequence order.
            now: The current monotonic time.
        """
        expected = after + 1
        out: list[StoredDocument] = []
        for document in documents:
            if document.ingest_seq > expected:
                missing = range(expected, document.ingest_seq)
                noticed = min(self.first_seen.setdefault(seq, now) for seq in missing)
                if now - noticed < self.grace_s:
                    break
                log.warning(
                    "passing ingest sequence numbers %d-%d: never inserted within %gs",
                    missing.start,
                    missing.stop - 1,
                    self.grace_s,
                )
            out.append(document)
            expected = document.ingest_seq + 1
        self.first_seen = {seq: t for seq, t in self.first_seen.items() if seq >= expected}
        return out


def latest_versions(documents: Iterable[StoredDocument]) -> list[StoredDocument]:
    """One version per (`entity`, `document_id`): the latest by timestamp, then sequence."""
    latest: dict[tuple[str, str], StoredDocument] = {}
    for document in documents:
        key = (document.entity, document.document_id)
        current = latest.get(key)
        if current is None or (document.timestamp, document.ingest_seq) > (
            current.timestamp,
            current.ingest_seq,
        ):
            latest[key] = document
    return sorted(latest.values(), key=lambda d: d.ingest_seq)


def to_arrow(documents: list[StoredDocument], schema: pa.Schema, stamp: datetime) -> pa.Table:
    """The rows of `documents` in `schema`; the last column (`landed_at`/`updated_at`) = stamp."""
    columns = {
        "entity": [d.entity for d in documents],
        "document_id": [d.document_id for d in documents],
        "timestamp": [d.timestamp.astimezone(UTC) for d in documents],
        "claim_id": [d.claim_id for d in documents],
        "customer_id": [d.customer_id for d in documents],
        "body_json": [d.body_json for d in documents],
        "ingest_id": [d.ingest_id for d in documents],
        "ingest_seq": [d.ingest_seq for d in documents],
        "principal": [d.principal for d in documents],
        "received_at": [d.received_at.astimezone(UTC) for d in documents],
        schema.names[-1]: [stamp] * len(documents),
    }
    return pa.Table.from_pydict(columns, schema=schema)


@dataclass(frozen=True)
class LandedBatch:
    """What one poll landed: rows per table and the sequence number each table reached."""

    bronze_rows: int
    silver_rows: int
    through_seq: int


class DocumentLanding:
    """Polls the document store and lands new versions into bronze and silver."""

    def __init__(
        self,
        store: DocumentStore,
        lake: Lake,
        postgres: PostgresSettings,
        settings: DocumentLandingSettings,
        *,
        heartbeat_path: Path | None = None,
    ) -> None:
        """Configure; nothing connects until `land_once()`."""
        self._store = store
        self._lake = lake
        self._postgres = postgres
        self._settings = settings
        self._gaps = GapTracker(settings.gap_grace_s)
        self._heartbeat = heartbeat_path or default_heartbeat_path()
        #: (bronze, silver) landed-through numbers, read from the Delta logs once: this job is
        #: their only writer, and replaying the logs at every idle poll costs a good part of
        #: a core. Forgotten after any error, so a failed commit is re-read from the log.
        self._through: tuple[int, int] | None = None

    @property
    def app_id(self) -> str:
        """The Delta app-transaction id: one per document database."""
        return f"dataplatform-document-landing:{self._store.settings.db}"

    def uri(self, table: str) -> str:
        """The delta-rs URI of `table` in this lake."""
        return self._lake.uri(table, scheme="s3")

    def landed_through(self, table: str) -> int:
        """The highest ingest sequence number `table` covers (0 when it has none)."""
        options = self._lake.s3.delta_storage_options()
        uri = self.uri(table)
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return 0
        version = DeltaTable(uri, storage_options=options).transaction_version(self.app_id)
        return version or 0

    def land_once(self) -> LandedBatch | None:
        """Land the next batch of versions, if any; None when there is nothing to land."""
        if self._through is None:
            self._through = (self.landed_through(BRONZE_TABLE), self.landed_through(SILVER_TABLE))
            self._mark_from_bronze(self._through[0])
        bronze_seq, silver_seq = self._through
        after = min(bronze_seq, silver_seq)
        documents = self._gaps.landable(
            after, self._store.after(after, self._settings.batch_size), time.monotonic()
        )
        if not documents:
            return None
        through = documents[-1].ingest_seq
        stamp = datetime.now(UTC)
        bronze = [d for d in documents if d.ingest_seq > bronze_seq]
        self._through = None
        if bronze:
            version = self._append_bronze(bronze, through, stamp)
            self._store.mark_landed(
                [d.ingest_id for d in bronze], landed_at=stamp, bronze_version=version
            )
            self._store.set_marked_through(through)
        silver = latest_versions(d for d in documents if d.ingest_seq > silver_seq)
        if silver:
            self._merge_silver(silver, through, stamp)
        self._through = (through, through)
        log.info(
            "landed documents",
            extra={
                "fields": {"bronze": len(bronze), "silver": len(silver), "through_seq": through}
            },
        )
        return LandedBatch(len(bronze), len(silver), through)

    def _commit(self, through: int) -> CommitProperties:
        return CommitProperties(app_transactions=[Transaction(self.app_id, through)])

    def _append_bronze(self, documents: list[StoredDocument], through: int, stamp: datetime) -> int:
        """Append to bronze; the table's version holding them."""
        uri = self.uri(BRONZE_TABLE)
        options = self._lake.s3.delta_storage_options()
        with table_commit_lock(self._postgres, uri):
            write_deltalake(
                uri,
                to_arrow(documents, BRONZE_SCHEMA, stamp),
                mode="append",
                storage_options=options,
                commit_properties=self._commit(through),
            )
            # Read under the lock: this commit is the table's latest.
            return DeltaTable(uri, storage_options=options).version()

    def _mark_from_bronze(self, bronze_seq: int) -> None:
        """Mark the versions bronze holds but the store does not know as landed yet.

        A crash between a bronze commit and its marks leaves them unmarked; bronze itself says
        what it holds (its rows past the store's marked-through number) and when each landed.
        """
        marked = self._store.marked_through()
        if marked >= bronze_seq:
            return
        rows = (
            DeltaTable(
                self.uri(BRONZE_TABLE), storage_options=self._lake.s3.delta_storage_options()
            )
            .to_pyarrow_dataset()
            .to_table(columns=["ingest_id", "landed_at"], filter=pc.field("ingest_seq") > marked)
            .to_pylist()
        )
        by_stamp: dict[datetime, list[str]] = {}
        for row in rows:
            by_stamp.setdefault(row["landed_at"], []).append(row["ingest_id"])
        for landed_at, ingest_ids in by_stamp.items():
            self._store.mark_landed(ingest_ids, landed_at=landed_at, bronze_version=None)
        self._store.set_marked_through(bronze_seq)
        log.info("marked landed documents from bronze", extra={"fields": {"versions": len(rows)}})

    def _merge_silver(self, documents: list[StoredDocument], through: int, stamp: datetime) -> None:
        uri = self.uri(SILVER_TABLE)
        options = self._lake.s3.delta_storage_options()
        source = to_arrow(documents, SILVER_SCHEMA, stamp)
        with table_commit_lock(self._postgres, uri):
            if not DeltaTable.is_deltatable(uri, storage_options=options):
                # `documents` holds one version per key already: the first commit is an insert.
                write_deltalake(
                    uri,
                    source,
                    mode="append",
                    storage_options=options,
                    commit_properties=self._commit(through),
                )
                return
            (
                DeltaTable(uri, storage_options=options)
                .merge(
                    source,
                    predicate="t.entity = s.entity AND t.document_id = s.document_id",
                    source_alias="s",
                    target_alias="t",
                    commit_properties=self._commit(through),
                )
                .when_matched_update_all(predicate=SILVER_NEWER)
                .when_not_matched_insert_all()
                .execute()
            )

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; a full batch is followed at once by the next poll."""
        while not stop.is_set():
            batch = None
            try:
                batch = self.land_once()
                write_heartbeat(
                    self._heartbeat,
                    {"status": "running", "through_seq": batch.through_seq if batch else None},
                )
            except Exception:
                log.exception("landing documents failed; retrying after the poll interval")
            if batch is None or batch.bronze_rows + batch.silver_rows == 0:
                stop.wait(self._settings.poll_interval_s)
        write_heartbeat(self._heartbeat, {"status": "stopped"})
