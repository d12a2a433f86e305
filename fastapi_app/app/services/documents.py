"""Ingest semi-structured documents into the document store (MongoDB; FerretDB natively).

A document is validated (`DocumentIn`: envelope plus free-form body), decoded with the exact
decoder (numbers as written, repeated keys refused) and inserted as one version with the next
ingest sequence number. The answer (200) comes once the store acknowledged the insert.

`Idempotency-Key`: the version's id is derived from the API key and the Idempotency-Key, so a
retry finds the version the first request stored (same document: its receipt again; another
document: 409) and concurrent retries cannot both insert. Without the header every accepted
document is a new version, as for records.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError
from pymongo.errors import PyMongoError

from dataplatform.contracts import exactjson
from dataplatform.contracts.documents import DocumentIn
from dataplatform.documents.store import DocumentStore, SequenceTaken, StoredDocument
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.security import Principal
from fastapi_app.app.services.errors import (
    InvalidJson,
    KeyConflict,
    RecordRejected,
    SinkUnavailable,
    validation_details,
    validation_message,
)

log = logging.getLogger(__name__)

#: Namespace of the version ids derived from (API key, Idempotency-Key).
IDEMPOTENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-4a8e-4b0b-9a57-3d0e2f8c9b41")

#: Sequence numbers tried when another process's inserts took the ones handed out.
SEQUENCE_ATTEMPTS = 20


@dataclass(frozen=True)
class ParsedDocument:
    """A valid document: the model, its body's exact JSON text and the request's digest."""

    model: DocumentIn
    body_json: str
    payload_sha256: str


@dataclass(frozen=True)
class DocumentOutcome:
    """The stored version and whether it was stored by an earlier request with the same key."""

    document: StoredDocument
    duplicate: bool


def parse_document(body: bytes) -> ParsedDocument:
    """Decode and validate one document.

    Raises:
        InvalidJson: Not JSON, or not a JSON object.
        RecordRejected: The document breaks `DocumentIn` (each bad field named).
    """
    try:
        obj = exactjson.loads(body)
    except exactjson.ExactJsonError as exc:
        if exc.kind == "duplicate_key":
            raise RecordRejected(
                f"1 validation error for DocumentIn: {exc}",
                detail=[{"loc": ["body"], "msg": str(exc), "type": "duplicate_key"}],
            ) from None
        raise InvalidJson(
            f"the body is not valid JSON: {exc}",
            detail=[{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}],
        ) from None
    if not isinstance(obj, dict):
        raise InvalidJson(
            "a document must be a JSON object with id, entity, timestamp and body",
            detail=[{"loc": ["body"], "msg": "not a JSON object", "type": "object_type"}],
        )
    try:
        model = DocumentIn.model_validate(obj)
        canonical = exactjson.dumps(obj)
        body_json = exactjson.dumps(obj["body"]).decode()
    except ValidationError as exc:
        details = validation_details(exc, prefix=["body"])
        raise RecordRejected(
            validation_message(details, title="DocumentIn"), detail=details
        ) from None
    except exactjson.ExactJsonError as exc:
        raise RecordRejected(
            f"1 validation error for DocumentIn: body: {exc}",
            detail=[{"loc": ["body", "body"], "msg": str(exc), "type": "json_invalid"}],
        ) from None
    return ParsedDocument(model, body_json, hashlib.sha256(canonical).hexdigest())


class DocumentService:
    """Stores documents and reads their receipts back, per API key."""

    def __init__(self, settings: IngestorSettings, store: DocumentStore) -> None:
        """Use `store`; its indexes are created on first use (the store may start later)."""
        self.settings = settings
        self._store = store
        self._indexed = False
        # FerretDB v1 runs `findAndModify` as a read then a write, so two concurrent `$inc`s
        # can hand out one number. Within a process, taking a number and inserting with it
        # happen one request at a time: numbers are unique and inserted in order (no gaps
        # from overtaking). Other processes' collisions are caught by the unique index.
        self._sequence_lock = threading.Lock()

    def _unavailable(self, exc: Exception) -> SinkUnavailable:
        log.warning("document store unavailable: %s", exc)
        return SinkUnavailable(
            "the document store (MongoDB) is unavailable; it runs in the advanced track. "
            "Retry after the Retry-After delay",
            retry_after_s=self.settings.retry_after_s,
        )

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            self._store.ensure_indexes()
            self._indexed = True

    async def ingest(
        self, parsed: ParsedDocument, *, principal: Principal, idempotency_key: str | None
    ) -> DocumentOutcome:
        """Store one version; 409 (`KeyConflict`) when the key was used for another document.

        Raises:
            KeyConflict: The Idempotency-Key was used with a different document.
            SinkUnavailable: The store failed or timed out.
        """
        try:
            return await asyncio.to_thread(self._ingest, parsed, principal, idempotency_key)
        except PyMongoError as exc:
            raise self._unavailable(exc) from None

    def _ingest(
        self, parsed: ParsedDocument, principal: Principal, idempotency_key: str | None
    ) -> DocumentOutcome:
        self._ensure_indexes()
        if idempotency_key is None:
            ingest_id = str(uuid.uuid4())
        else:
            ingest_id = str(
                uuid.uuid5(IDEMPOTENT_ID_NAMESPACE, f"{principal.name}\n{idempotency_key}")
            )
            existing = self._store.get(ingest_id)
            if existing is not None:
                return self._replay(existing, parsed)
        received_at = datetime.now(UTC)
        for _ in range(SEQUENCE_ATTEMPTS):
            with self._sequence_lock:
                outcome = self._insert_next(ingest_id, parsed, principal, received_at)
            if outcome is not None:
                return outcome
        raise SinkUnavailable(
            "the document store is too busy to hand out an ingest sequence number; retry",
            retry_after_s=self.settings.retry_after_s,
        )

    def _insert_next(
        self, ingest_id: str, parsed: ParsedDocument, principal: Principal, received_at: datetime
    ) -> DocumentOutcome | None:
        """Insert under the next sequence number; None when another process took it."""
        model = parsed.model
        links = model.links
        document = StoredDocument(
            ingest_id=ingest_id,
            ingest_seq=self._store.next_sequence(),
            entity=model.entity,
            document_id=model.id,
            timestamp=model.timestamp,
            claim_id=links["claim_id"],
            customer_id=links["customer_id"],
            body_json=parsed.body_json,
            payload_sha256=parsed.payload_sha256,
            principal=principal.name,
            received_at=received_at,
        )
        try:
            existing = self._store.insert(document)
        except SequenceTaken:
            return None
        if existing is not None:  # a concurrent request with the same key won
            return self._replay(existing, parsed)
        return DocumentOutcome(document, duplicate=False)

    @staticmethod
    def _replay(existing: StoredDocument, parsed: ParsedDocument) -> DocumentOutcome:
        if existing.payload_sha256 != parsed.payload_sha256:
            raise KeyConflict(
                "this Idempotency-Key was already used with a different document",
                detail=[
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": "used with a different document",
                        "type": "idempotency_conflict",
                    }
                ],
            )
        return DocumentOutcome(existing, duplicate=True)

    async def get(self, ingest_id: str, *, principal: Principal) -> StoredDocument | None:
        """The version stored under `ingest_id` if `principal` sent it, else None.

        Raises:
            SinkUnavailable: The store failed or timed out.
        """
        try:
            document = await asyncio.to_thread(self._store.get, ingest_id)
        except PyMongoError as exc:
            raise self._unavailable(exc) from None
        if document is None or document.principal != principal.name:
            return None
        return document

    async def close(self) -> None:
        """Close the store's connections."""
        await asyncio.to_thread(self._store.close)
