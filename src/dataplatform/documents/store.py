"""The document store: one MongoDB collection, its indexes and the ingest sequence.

FerretDB v1 has no change streams, so the landing job polls the store by an ingest sequence: a
number the ingestor takes from a counter document before it inserts a document. A unique index
makes a number usable once; a number taken by a request that then failed leaves a gap, which
the landing job waits out (`DocumentLandingSettings.gap_grace_s`) before passing it.

FerretDB v1 has no Decimal128 either: the body is stored as its exact JSON text (`body_json`),
with the envelope and the extracted fields (`claim_id`, `customer_id`) as indexed fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from dataplatform.settings import MongoSettings

#: The collection of every document version, and the one holding the sequence counter.
COLLECTION = "documents"
COUNTERS = "counters"
SEQUENCE_ID = "documents.ingest_seq"
#: The counter holding the highest ingest sequence number whose landing is marked on the
#: documents (`mark_landed`): the landing job catches up from bronze past it after a crash.
MARKED_ID = "documents.landed_marked"


#: Versions marked landed per update (a bounded `$in` list).
_MARK_CHUNK = 1000


@dataclass(frozen=True)
class IndexSpec:
    """One index of the documents collection."""

    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


#: The seed's §7.2 indexes, applied to documents: a single-field index on `claim_id`, the date
#: index for sorting by time, a compound index for filter-and-sort (the versions of one
#: document, newest first), plus the unique ingest sequence the landing job polls.
INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("ingest_seq_unique", (("ingest_seq", ASCENDING),), unique=True),
    IndexSpec("claim_id", (("claim_id", ASCENDING),)),
    IndexSpec("customer_id", (("customer_id", ASCENDING),)),
    IndexSpec("timestamp_desc", (("timestamp", DESCENDING),)),
    IndexSpec(
        "entity_document_versions",
        (("entity", ASCENDING), ("document_id", ASCENDING), ("timestamp", DESCENDING)),
    ),
)


@dataclass(frozen=True)
class StoredDocument:
    """One version of a document as the store holds it.

    Attributes:
        ingest_id: The store's `_id`, also the receipt's id.
        ingest_seq: Position in the ingest sequence (the landing job's cursor).
        entity: `claim_note`, `adjuster_report` or `customer_profile`.
        document_id: The envelope's `id`.
        timestamp: The envelope's `timestamp` (UTC).
        claim_id: Extracted from the body (notes and reports).
        customer_id: Extracted from the body (profiles).
        body_json: The body's exact JSON text.
        payload_sha256: Digest of the whole validated document (Idempotency-Key replays).
        principal: The API key that sent it; only that key can read it back through the API.
        received_at: When the ingestor accepted it (UTC).
        landed_at: When the landing job wrote it to bronze; None until then.
        bronze_version: The bronze Delta table's version that holds it, when known.
    """

    ingest_id: str
    ingest_seq: int
    entity: str
    document_id: str
    timestamp: datetime
    claim_id: str | None
    customer_id: str | None
    body_json: str
    payload_sha256: str
    principal: str
    received_at: datetime
    landed_at: datetime | None = None
    bronze_version: int | None = None

    def to_mongo(self) -> dict[str, Any]:
        """The BSON document (`_id` = ingest id), as inserted: not yet landed."""
        return {
            "_id": self.ingest_id,
            "ingest_seq": self.ingest_seq,
            "entity": self.entity,
            "document_id": self.document_id,
            # BSON dates keep milliseconds: the exact instant (microseconds) is kept as text too,
            # so versions are ordered exactly as the client stamped them.
            "timestamp": self.timestamp,
            "timestamp_iso": self.timestamp.isoformat(),
            "claim_id": self.claim_id,
            "customer_id": self.customer_id,
            "body_json": self.body_json,
            "payload_sha256": self.payload_sha256,
            "principal": self.principal,
            "received_at": self.received_at,
        }

    @classmethod
    def from_mongo(cls, doc: dict[str, Any]) -> StoredDocument:
        """Read back a BSON document written by `to_mongo`."""
        return cls(
            ingest_id=doc["_id"],
            ingest_seq=int(doc["ingest_seq"]),
            entity=doc["entity"],
            document_id=doc["document_id"],
            timestamp=datetime.fromisoformat(doc["timestamp_iso"]),
            claim_id=doc.get("claim_id"),
            customer_id=doc.get("customer_id"),
            body_json=doc["body_json"],
            payload_sha256=doc["payload_sha256"],
            principal=doc["principal"],
            received_at=doc["received_at"],
            landed_at=doc.get("landed_at"),
            bronze_version=doc.get("bronze_version"),
        )


class SequenceTaken(Exception):
    """Another insert used the same ingest sequence number: take a new one and retry."""


class DocumentStore:
    """Synchronous access to the documents collection (pymongo)."""

    def __init__(self, settings: MongoSettings, *, client: MongoClient[Any] | None = None) -> None:
        """Configure; pymongo connects lazily, on the first operation."""
        self.settings = settings
        self._client: MongoClient[Any] = client or MongoClient(**settings.client_options())
        database = self._client[settings.db]
        self.documents: Collection[Any] = database[COLLECTION]
        self._counters: Collection[Any] = database[COUNTERS]

    def ensure_indexes(self) -> list[str]:
        """Create the collection's indexes (idempotent); returns their names."""
        for index in INDEXES:
            self.documents.create_index(list(index.keys), name=index.name, unique=index.unique)
        return [index.name for index in INDEXES]

    def next_sequence(self) -> int:
        """Take the next ingest sequence number (from 1).

        FerretDB v1 may hand one number to two concurrent callers (its `findAndModify` reads,
        then writes): the unique index on `ingest_seq` refuses the second insert
        (`SequenceTaken`), and the caller takes another number.
        """
        for _ in range(2):
            try:
                counter = self._counters.find_one_and_update(
                    {"_id": SEQUENCE_ID},
                    {"$inc": {"value": 1}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue  # two first upserts at once: the counter exists now
            if counter is not None:  # an upsert returns the document it made
                return int(counter["value"])
        raise RuntimeError("the ingest sequence counter could not be created")

    def insert(self, document: StoredDocument) -> StoredDocument | None:
        """Insert one version.

        Returns:
            None when inserted; the stored document when one with the same ingest id exists
            already (an Idempotency-Key replay).

        Raises:
            SequenceTaken: The ingest sequence number was used by another insert.
        """
        try:
            self.documents.insert_one(document.to_mongo())
        except DuplicateKeyError:
            existing = self.get(document.ingest_id)
            if existing is not None:
                return existing
            raise SequenceTaken(document.ingest_seq) from None
        return None

    def get(self, ingest_id: str) -> StoredDocument | None:
        """The version stored under `ingest_id`, or None."""
        doc = self.documents.find_one({"_id": ingest_id})
        return None if doc is None else StoredDocument.from_mongo(doc)

    def after(self, sequence: int, limit: int) -> list[StoredDocument]:
        """Up to `limit` versions with an ingest sequence above `sequence`, in sequence order."""
        cursor = (
            self.documents.find({"ingest_seq": {"$gt": sequence}})
            .sort("ingest_seq", ASCENDING)
            .limit(limit)
        )
        return [StoredDocument.from_mongo(doc) for doc in cursor]

    def mark_landed(
        self, ingest_ids: Sequence[str], *, landed_at: datetime, bronze_version: int | None
    ) -> None:
        """Record on each version that it is in bronze (its receipt then answers `landed`)."""
        for start in range(0, len(ingest_ids), _MARK_CHUNK):
            self.documents.update_many(
                {"_id": {"$in": list(ingest_ids[start : start + _MARK_CHUNK])}},
                {"$set": {"landed_at": landed_at, "bronze_version": bronze_version}},
            )

    def marked_through(self) -> int:
        """The highest ingest sequence number up to which every landed version is marked."""
        counter = self._counters.find_one({"_id": MARKED_ID})
        return 0 if counter is None else int(counter["value"])

    def set_marked_through(self, sequence: int) -> None:
        """Every landed version up to `sequence` is marked (`mark_landed`)."""
        self._counters.update_one({"_id": MARKED_ID}, {"$set": {"value": sequence}}, upsert=True)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()
